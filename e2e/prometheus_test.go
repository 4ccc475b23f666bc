//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// The proof against the real thing: a real Prometheus scrapes the real
// exporter binary, which collects from the fake Buildkite API with a living
// (simulated) fleet; the repository's rule files are loaded and a real
// Alertmanager is attached. The test checks that every rule is healthy,
// that every dashboard query returns data, and that a scripted scenario (a
// queue emptied, an agent lost) brings the matching alerts to Alertmanager:
// BuildkiteQueueNoConnectedAgents for the queue, BuildkiteAgentLost for the
// agent and, once the backlog alerts exist, BuildkiteQueueJobsWithoutAgents
// for the jobs left in the queue.
//
// Our alerts wait minutes to hours (`for:`), so Prometheus loads a copy of
// alerts/*.yml with the timings shortened (see shortenRuleTimings); the
// expressions are untouched.

const (
	demoOrg        = "demo"
	demoAgentToken = "demo-agent-token"
	emptiedQueue   = "release" // the scripted queue the scenario empties
	demoCluster    = "demo-cluster"
	// backlogJoin joins the Agent Metrics backlog (of the queues the %s
	// matchers select) with the agent counts, as the README's migration
	// table and the alerts do.
	backlogJoin = `sum by (organization, buildkite_cluster, queue) (buildkite_queue_jobs{%s})
  / on (organization, buildkite_cluster, queue)
  clamp_min(sum by (organization, buildkite_cluster, queue) (buildkite_agents{connection_state="connected"}), 1)`
	scrapeJob = "buildkite"
)

// Rule timings in the copy Prometheus loads. Every `for:` becomes
// shortFor, every `keep_firing_for:` shortKeepFiring, and a group
// `interval:` (none today) shortInterval. The evaluation interval is 1s.
const (
	shortFor        = "2s"
	shortKeepFiring = "30s" // outlives a scrape hiccup while the test queries Alertmanager
	shortInterval   = "1s"
)

// mayBeEmpty lists the dashboard queries (file: panel title / refId) that
// may legitimately return no series after the scenario, and why. Every
// other query must return data. Entries that were not needed are logged.
var mayBeEmpty = map[string]string{
	// None today: after the scenario the simulated fleet has busy, idle and
	// paused agents, finished and running jobs, departures of every kind and
	// the emptied queue, and every family the dashboards read is
	// zero-filled or per agent. Add entries here with the reason, e.g. a
	// panel of stuck jobs (nothing runs for hours in a 2-minute test).
}

// Grafana's built-in variables and what the test sends for them.
var grafanaBuiltins = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__interval_ms":   "15000",
	"__range":         "5m",
	"__range_s":       "300",
	"__range_ms":      "300000",
}

// grafanaVarRef matches $var, ${var}, ${var:format} and [[var]].
var grafanaVarRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)`)

// TestPrometheusAlertsAndDashboards is described at the top of the file.
func TestPrometheusAlertsAndDashboards(t *testing.T) {
	start := time.Now()
	prometheusBin := findTool(t, "PROMETHEUS", "prometheus")
	alertmanagerBin := findTool(t, "ALERTMANAGER", "prometheus-alertmanager", "alertmanager")
	amtoolBin := findTool(t, "AMTOOL", "amtool")
	t.Logf("prometheus: %s", firstLine(runTool(t, prometheusBin, "--version")))
	t.Logf("alertmanager: %s", firstLine(runTool(t, alertmanagerBin, "--version")))

	// The fake API in-process, so the test can script its fleet.
	fleet := startScriptedFleet(t)

	// The exporter, with the REST API and the Agent Metrics API (backlog).
	tmp := t.TempDir()
	agentTokenFile := filepath.Join(tmp, "agent-token")
	writeFile(t, agentTokenFile, demoAgentToken)
	exp := StartExporter(t, DemoToken,
		"--buildkite.organization", demoOrg,
		"--buildkite.api-url", fleet.srv.URL,
		"--buildkite.agent-api-url", fleet.srv.AgentURL,
		"--buildkite.agent-token-file", agentTokenFile,
		// Wait times of the same cluster queues, from the fake's GraphQL
		// API, for the wait-time panels and alert.
		"--collector.queue-metrics",
		"--buildkite.graphql-url", fleet.srv.GraphQLURL,
	)

	// Alertmanager: every alert goes to a receiver that sends nothing; the
	// test reads what arrived from its API.
	amDir := filepath.Join(tmp, "alertmanager")
	amConfig := filepath.Join(amDir, "alertmanager.yml")
	writeFile(t, amConfig, `route:
  receiver: blackhole
  group_by: ['...']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: blackhole
`)
	runTool(t, amtoolBin, "check-config", amConfig)
	amAddr := FreeAddr(t)
	am := Start(t, "alertmanager", alertmanagerBin, nil,
		"--config.file="+amConfig,
		"--storage.path="+filepath.Join(amDir, "data"),
		"--web.listen-address="+amAddr,
		"--cluster.listen-address=", // no gossip: a single instance
		"--log.level=info",
	)
	amURL := "http://" + amAddr
	WaitListening(t, am, amAddr, startTimeout)
	waitReady(t, am, amURL+"/-/ready", startTimeout)

	// Prometheus, with a shortened copy of every alerts/*.yml.
	promDir := filepath.Join(tmp, "prometheus")
	rulesDir := filepath.Join(promDir, "rules")
	wantRules := writeShortenedRules(t, rulesDir)
	promConfig := filepath.Join(promDir, "prometheus.yml")
	writeFile(t, promConfig, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %q
alerting:
  alertmanagers:
    - api_version: v2
      static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, filepath.Join(rulesDir, "*.yml"), amAddr, scrapeJob, exp.Addr))
	promAddr := FreeAddr(t)
	prom := Start(t, "prometheus", prometheusBin, nil,
		"--config.file="+promConfig,
		"--storage.tsdb.path="+filepath.Join(promDir, "data"),
		"--storage.tsdb.retention.time=1h",
		"--web.listen-address="+promAddr,
		"--web.console.templates="+filepath.Join(promDir, "consoles"),
		"--web.console.libraries="+filepath.Join(promDir, "console_libraries"),
		"--log.level=info",
	)
	promURL := "http://" + promAddr
	WaitListening(t, prom, promAddr, startTimeout)
	waitReady(t, prom, promURL+"/-/ready", startTimeout)
	api := &promAPI{t: t, url: promURL}
	t.Logf("%s: all processes ready", time.Since(start).Round(time.Millisecond))

	// Before the scenario: Prometheus has seen the scripted queue and the
	// agent that will be lost, and nothing about them fires.
	api.waitNonEmpty(fmt.Sprintf(`up{job=%q} == 1`, scrapeJob), 30*time.Second)
	api.waitNonEmpty(fmt.Sprintf(`buildkite_up{organization=%q} == 1`, demoOrg), 30*time.Second)
	api.waitNonEmpty(fmt.Sprintf(`buildkite:queue_agents_connected:sum{organization=%q, queue=%q} > 0`, demoOrg, emptiedQueue), 30*time.Second)
	api.waitNonEmpty(fmt.Sprintf(`buildkite_agent_info{organization=%q, id=%q}`, demoOrg, lostAgentID), 30*time.Second)
	api.waitNonEmpty(`buildkite_queue_jobs`, 30*time.Second)
	api.waitNonEmpty(fmt.Sprintf(backlogJoin, fmt.Sprintf(`buildkite_cluster=%q, queue=%q`, demoCluster, emptiedQueue)), 30*time.Second)
	api.waitNonEmpty(fmt.Sprintf(`buildkite_queue_wait_time_seconds{organization=%q, buildkite_cluster=%q, queue=%q, stat="p95"}`, demoOrg, demoCluster, emptiedQueue), 30*time.Second)
	if alerts := amAlerts(t, amURL); len(matchAlerts(alerts, "BuildkiteQueueNoConnectedAgents", map[string]string{"queue": emptiedQueue})) > 0 ||
		len(matchAlerts(alerts, "BuildkiteAgentLost", map[string]string{"id": lostAgentID})) > 0 {
		t.Fatalf("the scenario's alerts fire before the scenario: %v", alerts)
	}
	t.Logf("%s: the healthy fleet is scraped", time.Since(start).Round(time.Millisecond))

	// The scenario: the release queue's agents all disconnect, and one
	// deploy agent is lost.
	scenario := time.Now()
	fleet.runScenario()

	// The matching alerts reach Alertmanager.
	wantAlerts := []struct {
		name   string
		labels map[string]string
	}{
		{"BuildkiteQueueNoConnectedAgents", map[string]string{"job": scrapeJob, "organization": demoOrg, "queue": emptiedQueue, "severity": "critical"}},
		{"BuildkiteAgentLost", map[string]string{"organization": demoOrg, "id": lostAgentID, "name": lostAgentName, "hostname": lostAgentHost, "queue": "deploy", "connection_state": "lost", "severity": "warning"}},
	}
	// With the backlog alerts loaded, the jobs the scenario leaves in the
	// emptied queue must raise BuildkiteQueueJobsWithoutAgents too.
	if hasAlertRule(wantRules, "BuildkiteQueueJobsWithoutAgents") {
		wantAlerts = append(wantAlerts, struct {
			name   string
			labels map[string]string
		}{"BuildkiteQueueJobsWithoutAgents", map[string]string{"organization": demoOrg, "queue": emptiedQueue, "severity": "critical"}})
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		alerts := amAlerts(t, amURL)
		missing := 0
		for _, w := range wantAlerts {
			if len(matchAlerts(alerts, w.name, w.labels)) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, w := range wantAlerts {
				if len(matchAlerts(alerts, w.name, w.labels)) == 0 {
					t.Errorf("Alertmanager has no %s alert with labels %v", w.name, w.labels)
				}
			}
			t.Logf("Prometheus alerts: %s", api.raw("/api/v1/alerts"))
			t.Fatalf("Alertmanager alerts after 90s: %v", alerts)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%s: %d alerts reached Alertmanager %s after the scenario", time.Since(start).Round(time.Millisecond), len(wantAlerts), time.Since(scenario).Round(time.Millisecond))

	// The same, as an operator would check it with amtool.
	for _, w := range wantAlerts {
		args := []string{"alert", "query", "--alertmanager.url=" + amURL, "--output=json", "alertname=" + w.name}
		for _, k := range sortedKeys(w.labels) {
			args = append(args, k+"="+w.labels[k])
		}
		var got []amAlert
		if err := json.Unmarshal([]byte(runTool(t, amtoolBin, args...)), &got); err != nil {
			t.Fatalf("amtool %v: %v", args, err)
		}
		if len(got) == 0 {
			t.Errorf("amtool %s finds no alert", strings.Join(args, " "))
		}
	}

	// Every rule of every file loaded, evaluated and is healthy.
	checkRules(t, api, wantRules)

	// Every dashboard query parses and returns data.
	checkDashboards(t, api)

	t.Logf("%s: done", time.Since(start).Round(time.Millisecond))
}

// findTool returns the binary named by $env, else the first of names on
// PATH, failing the test with an install hint when there is none.
func findTool(t *testing.T, env string, names ...string) string {
	t.Helper()
	hint := "install the pinned Debian packages with `sudo scripts/install-e2e-deps.sh`, or point " + env + " at the binary"
	if p := os.Getenv(env); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s=%s is not an executable (%v): %s", env, p, err, hint)
		}
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("%s is required for this test but none of %v is on PATH: %s", env, names, hint)
	return ""
}

// runTool runs a short-lived command (bounded to a minute) and returns its
// standard output, failing the test when it fails.
func runTool(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", bin, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	if stdout.Len() == 0 { // --version goes to stderr on some builds
		return stderr.String()
	}
	return stdout.String()
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, p *Process, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if p.Exited() {
			t.Fatalf("%s exited: %v\n%s", p.Name, p.err, p.Output())
		}
		resp, err := httpClient.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not ready at %s after %s (%v)", p.Name, url, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The scripted part of the fleet: agents the Simulator leaves alone until
// the scenario (it would otherwise scale them in or lose them at random).
const (
	lostAgentID   = "e2e00000-0000-4000-8000-0000000000ff"
	lostAgentName = "deploy-e2e-lost-1"
	lostAgentHost = "deploy-e2e-lost"
)

var releaseAgentIDs = []string{
	"e2e00000-0000-4000-8000-000000000001",
	"e2e00000-0000-4000-8000-000000000002",
	"e2e00000-0000-4000-8000-000000000003",
}

type scriptedFleet struct {
	srv *buildkitetest.Server

	mu   sync.Mutex // guards held and orders Step against the scenario
	held []string   // agents kept connected after every Step
}

// startScriptedFleet serves the fake API in-process: a simulated fleet of
// about 30 agents in four queues, stepped every second, plus the scripted
// agents (three serving only the release queue, one deploy agent to lose).
func startScriptedFleet(t *testing.T) *scriptedFleet {
	t.Helper()
	srv := buildkitetest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddToken(DemoToken)
	srv.AddAgentToken(demoAgentToken, demoOrg, demoCluster)
	// The agent token's cluster holds the scripted queues, so that the
	// backlog joins the agent counts on organization, buildkite_cluster,
	// queue; unclustered agents serve "default" and "windows" beside it.
	// One queue has its dispatch paused, for the dashboards' panels.
	sim := buildkitetest.NewSimulator(srv.Fake, demoOrg, buildkitetest.SimConfig{
		Queues: []string{"default", "windows"},
		Clusters: []buildkitetest.SimCluster{{Name: demoCluster, Queues: []buildkitetest.SimQueue{
			{Key: "default"}, {Key: "deploy"}, {Key: "macos"}, {Key: emptiedQueue, NoAgents: true}, {Key: "maintenance", DispatchPaused: true},
		}}},
		Agents: 30,
		Seed:   1,
	})
	clusterID := buildkitetest.ClusterID(demoOrg, demoCluster)
	now := time.Now()
	agent := func(id, name, host, queue string) buildkitetest.Agent {
		return buildkitetest.Agent{
			ClusterQueueID: buildkitetest.QueueID(clusterID, queue),
			ID:             id, Name: name, Hostname: host, IPAddress: "10.0.200.1",
			UserAgent: "buildkite-agent/3.77.0.10042 (linux; amd64)", Version: "3.77.0",
			OSID: "linux", Arch: "amd64", Queue: queue,
			MetaData:    []string{"queue=" + queue, "os=linux", "instance-type=c6i.xlarge"},
			CreatedAt:   now.Add(-time.Hour),
			ConnectedAt: ptrTo(now.Add(-time.Hour)),
		}
	}
	f := &scriptedFleet{srv: srv}
	for i, id := range releaseAgentIDs {
		a := agent(id, fmt.Sprintf("release-e2e-%d-1", i+1), fmt.Sprintf("release-e2e-%d", i+1), emptiedQueue)
		if i == 0 {
			// A member whose shape drifted, as Buildkite's builds API sends
			// priority: the agent counts, the field-error counter (and its
			// dashboard panel) moves.
			a.Extra = map[string]any{"priority": map[string]any{"number": 1}}
		}
		srv.PutAgent(demoOrg, a)
		f.held = append(f.held, id)
	}
	srv.PutAgent(demoOrg, agent(lostAgentID, lostAgentName, lostAgentHost, "deploy"))
	f.held = append(f.held, lostAgentID)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			f.mu.Lock()
			sim.Step()
			for _, id := range f.held {
				srv.UpdateAgent(demoOrg, id, func(a *buildkitetest.Agent) {
					a.ConnectionState = buildkitetest.StateConnected
					a.DisconnectedAt, a.LostAt, a.StoppedAt = nil, nil, nil
				})
			}
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return f
}

// runScenario empties the release queue (its agents disconnect, five jobs
// are left waiting in it on the Agent Metrics API) and loses the deploy
// agent.
func (f *scriptedFleet) runScenario() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = nil
	for _, id := range releaseAgentIDs {
		f.srv.SetConnectionState(demoOrg, id, buildkitetest.StateDisconnected)
	}
	f.srv.SetJobs(demoOrg, emptiedQueue, 5, 0, 1)
	f.srv.SetConnectionState(demoOrg, lostAgentID, buildkitetest.StateLost)
}

// hasAlertRule reports whether rules ("group/name") hold an alert named
// name.
func hasAlertRule(rules []string, name string) bool {
	for _, r := range rules {
		if strings.HasSuffix(r, "/"+name) {
			return true
		}
	}
	return false
}

func ptrTo[T any](v T) *T { return &v }

// writeShortenedRules copies every alerts/*.yml into dir with the rule
// timings shortened, and returns the rules they hold as "group/name".
func writeShortenedRules(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(RepoRoot(t), "alerts", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no alerts/*.yml rule files")
	}
	var rules []string
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(raw, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		names, changed, err := shortenRuleTimings(&doc)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var out bytes.Buffer
		enc := yaml.NewEncoder(&out)
		enc.SetIndent(2)
		if err := enc.Encode(&doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		writeFile(t, filepath.Join(dir, filepath.Base(file)), out.String())
		t.Logf("%s: %d rules, shortened: %s", filepath.Base(file), len(names), strings.Join(changed, "; "))
		rules = append(rules, names...)
	}
	return rules
}

// shortenRuleTimings rewrites a rule file in place: every rule's `for:` to
// shortFor, `keep_firing_for:` to shortKeepFiring, and every group's
// `interval:` to shortInterval. It returns the rules as "group/name" and
// what it changed.
func shortenRuleTimings(doc *yaml.Node) (rules, changed []string, err error) {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil, fmt.Errorf("not a single YAML document")
	}
	groups := mapValue(doc.Content[0], "groups")
	if groups == nil || groups.Kind != yaml.SequenceNode {
		return nil, nil, fmt.Errorf("no groups list")
	}
	for _, g := range groups.Content {
		gname := scalar(mapValue(g, "name"))
		if v := mapValue(g, "interval"); v != nil {
			changed = append(changed, fmt.Sprintf("group %s interval %s->%s", gname, v.Value, shortInterval))
			v.Value = shortInterval
		}
		rs := mapValue(g, "rules")
		if rs == nil {
			continue
		}
		for _, r := range rs.Content {
			name := scalar(mapValue(r, "alert")) + scalar(mapValue(r, "record"))
			rules = append(rules, gname+"/"+name)
			for key, short := range map[string]string{"for": shortFor, "keep_firing_for": shortKeepFiring} {
				if v := mapValue(r, key); v != nil {
					changed = append(changed, fmt.Sprintf("%s %s %s->%s", name, key, v.Value, short))
					v.Value = short
				}
			}
		}
	}
	sort.Strings(changed)
	return rules, changed, nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n == nil {
		return ""
	}
	return n.Value
}

// promAPI queries Prometheus' HTTP API.
type promAPI struct {
	t   *testing.T
	url string
}

type promSample struct {
	Metric map[string]string `json:"metric"`
}

type promResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

// get fetches path (with query) and decodes the envelope; a non-success
// answer is returned as an error.
func (p *promAPI) get(path string, query url.Values) (json.RawMessage, error) {
	u := p.url + path
	if query != nil {
		u += "?" + query.Encode()
	}
	resp, err := httpClient.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r promResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("HTTP %d: %w: %s", resp.StatusCode, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("HTTP %d: %s: %s", resp.StatusCode, r.ErrorType, r.Error)
	}
	return r.Data, nil
}

func (p *promAPI) raw(path string) string {
	data, err := p.get(path, nil)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// query runs an instant query and returns the number of series (1 for a
// scalar or string result).
func (p *promAPI) query(q string) (int, error) {
	data, err := p.get("/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		return 0, err
	}
	var d struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return 0, err
	}
	switch d.ResultType {
	case "vector", "matrix":
		var series []promSample
		if err := json.Unmarshal(d.Result, &series); err != nil {
			return 0, err
		}
		return len(series), nil
	default:
		return 1, nil
	}
}

// waitNonEmpty polls q until it returns a series.
func (p *promAPI) waitNonEmpty(q string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := p.query(q)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("after %s, %s returns nothing (%v)", timeout, q, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkRules waits until Prometheus has evaluated every rule of want
// ("group/name") and checks that all are healthy and nothing else is
// loaded.
func checkRules(t *testing.T, api *promAPI, want []string) {
	t.Helper()
	type rule struct {
		Name      string `json:"name"`
		Health    string `json:"health"`
		LastError string `json:"lastError"`
		Type      string `json:"type"`
	}
	var groups struct {
		Groups []struct {
			Name  string `json:"name"`
			File  string `json:"file"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := api.get("/api/v1/rules", nil)
		if err != nil {
			t.Fatalf("/api/v1/rules: %v", err)
		}
		if err := json.Unmarshal(data, &groups); err != nil {
			t.Fatalf("/api/v1/rules: %v", err)
		}
		unknown := 0
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				if r.Health == "unknown" {
					unknown++
				}
			}
		}
		if unknown == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30s, %d rules are not evaluated yet: %s", unknown, data)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var got []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			got = append(got, g.Name+"/"+r.Name)
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s/%s (%s, %s): health %q, last error %q", g.Name, r.Name, r.Type, filepath.Base(g.File), r.Health, r.LastError)
			}
		}
	}
	sort.Strings(got)
	want = append([]string(nil), want...)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Prometheus loaded rules\n%s\nthe files hold\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	t.Logf("%d rules in %d groups loaded and healthy", len(got), len(groups.Groups))
}

// checkDashboards runs every variable and panel query of dashboards/*.json,
// with the variables substituted, and requires data from each unless
// mayBeEmpty excuses it.
func checkDashboards(t *testing.T, api *promAPI) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(RepoRoot(t), "dashboards", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards/*.json (%v)", err)
	}
	used := map[string]bool{}
	total, empty := 0, 0
	for _, file := range files {
		base := filepath.Base(file)
		var d dashboardJSON
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		values := map[string]string{}
		for _, v := range d.Templating.List {
			switch {
			case v.Type == "datasource":
				// No value: a query must not use it.
			case v.Name == "organization":
				values[v.Name] = demoOrg
			case v.AllValue != "":
				values[v.Name] = v.AllValue
			default:
				values[v.Name] = ".*"
			}
		}

		type dq struct{ where, expr string }
		var queries []dq
		labelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			q := v.queryString()
			if sm := labelValues.FindStringSubmatch(strings.TrimSpace(q)); sm != nil {
				q = fmt.Sprintf("count by (%s) (%s)", sm[2], sm[1])
			}
			queries = append(queries, dq{"variable " + v.Name, q})
		}
		for _, p := range flattenPanels(d.Panels) {
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					continue
				}
				queries = append(queries, dq{fmt.Sprintf("%s / %s", p.Title, tg.RefID), tg.Expr})
			}
		}
		for _, q := range queries {
			total++
			key := base + ": " + q.where
			expr, err := substituteGrafana(q.expr, values)
			if err != nil {
				t.Errorf("%s: %v in %q", key, err, q.expr)
				continue
			}
			n, err := api.query(expr)
			if err != nil {
				t.Errorf("%s: query %q: %v", key, expr, err)
				continue
			}
			if n > 0 {
				continue
			}
			empty++
			if reason, ok := mayBeEmpty[key]; ok {
				used[key] = true
				t.Logf("%s: no data (allowed: %s)", key, reason)
				continue
			}
			t.Errorf("%s: query %q returns no data", key, expr)
		}
	}
	for key := range mayBeEmpty {
		if !used[key] {
			// Either the query returned data or it no longer exists.
			t.Logf("mayBeEmpty entry %q was not needed", key)
		}
	}
	t.Logf("%d dashboard queries run, %d empty", total, empty)
}

type dashboardJSON struct {
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaVariable struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	AllValue string `json:"allValue"`
	Query    any    `json:"query"` // a string, or {"query": "..."} in newer schemas
}

func (v grafanaVariable) queryString() string {
	switch q := v.Query.(type) {
	case string:
		return q
	case map[string]any:
		s, _ := q["query"].(string)
		return s
	}
	return ""
}

type grafanaPanel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // collapsed rows
}

func flattenPanels(ps []grafanaPanel) []grafanaPanel {
	var out []grafanaPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}

// substituteGrafana replaces Grafana's built-ins and the dashboard's
// variables; any other variable is an error.
func substituteGrafana(q string, values map[string]string) (string, error) {
	var unknown []string
	out := grafanaVarRef.ReplaceAllStringFunc(q, func(s string) string {
		sm := grafanaVarRef.FindStringSubmatch(s)
		name := sm[1] + sm[2] + sm[3]
		if v, ok := grafanaBuiltins[name]; ok {
			return v
		}
		if v, ok := values[name]; ok {
			return v
		}
		unknown = append(unknown, name)
		return s
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variable(s) %v", unknown)
	}
	return out, nil
}

// amAlert is an alert as Alertmanager's API v2 (and amtool -o json) show it.
type amAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
}

func (a amAlert) String() string {
	return fmt.Sprintf("%s%v(%s)", a.Labels["alertname"], a.Labels, a.Status.State)
}

// amAlerts lists Alertmanager's alerts.
func amAlerts(t *testing.T, amURL string) []amAlert {
	t.Helper()
	var alerts []amAlert
	if err := json.Unmarshal([]byte(Get(t, amURL+"/api/v2/alerts", http.StatusOK)), &alerts); err != nil {
		t.Fatalf("Alertmanager /api/v2/alerts: %v", err)
	}
	return alerts
}

// matchAlerts returns the alerts named name whose labels include labels.
func matchAlerts(alerts []amAlert, name string, labels map[string]string) []amAlert {
	var out []amAlert
next:
	for _, a := range alerts {
		if a.Labels["alertname"] != name {
			continue
		}
		for k, v := range labels {
			if a.Labels[k] != v {
				continue next
			}
		}
		out = append(out, a)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
