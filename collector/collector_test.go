package collector_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testToken = "bkua_test_token_0123456789"

// epoch is the fake clock's start: every timestamp in the golden files
// is relative to it.
var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	t        *testing.T
	server   *buildkitetest.Server
	clock    *buildkitetest.Clock
	api      *client.Client
	exporter *collector.Exporter
}

// newEnv starts a fake with a read_agents token for every organization and
// an exporter on it; cfg's zero fields get the flags' defaults.
func newEnv(t *testing.T, cfg collector.Config) *env {
	t.Helper()
	server := buildkitetest.NewServer()
	t.Cleanup(server.Close)
	clock := buildkitetest.NewClock(epoch)
	server.SetClock(clock.Now)
	server.AddToken(testToken, "read_agents")
	for _, org := range cfg.Organizations {
		server.AddOrganization(org)
	}
	api, err := client.New(client.Config{
		BaseURL:      server.URL,
		Token:        client.StaticToken(testToken),
		Now:          clock.Now,
		RetryBackoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QueueRetention == 0 {
		cfg.QueueRetention = 24 * time.Hour
	}
	if cfg.AgentRetention == 0 {
		cfg.AgentRetention = time.Hour
	}
	cfg.Now = clock.Now
	exporter, err := collector.New(api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, server: server, clock: clock, api: api, exporter: exporter}
}

func defaults(orgs ...string) collector.Config {
	return collector.Config{Organizations: orgs, AgentDetails: true, DepartureLookups: 10, Timeout: 10 * time.Second}
}

func at(d time.Duration) *time.Time {
	t := epoch.Add(d)
	return &t
}

func intp(i int) *int { return &i }

// golden compares what /metrics serves of the exporter with
// testdata/name.metrics.
func (e *env) golden(name string) {
	e.t.Helper()
	goldenGather(e.t, name, served{context.Background(), e.exporter})
}

// served is what /metrics serves of an exporter, as a prometheus.Gatherer:
// each Gather is one scrape bound to ctx, written by collector.WriteText
// and parsed back. Its families pass the checks a registry makes of
// collected metrics (valid label names, UTF-8 values, no duplicate
// series), the scrape's collector is registered pedantically, and a text
// the parser refuses is an error.
type served struct {
	ctx context.Context
	e   *collector.Exporter
}

func (s served) Gather() ([]*dto.MetricFamily, error) {
	scrape := s.e.Scrape(s.ctx)
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(scrape); err != nil {
		return nil, err
	}
	var text bytes.Buffer
	if err := collector.WriteText(&text, reg, scrape); err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	byName, err := parser.TextToMetricFamilies(bytes.NewReader(text.Bytes()))
	if err != nil {
		return nil, fmt.Errorf("WriteText wrote what the text parser refuses: %w\n%s", err, text.Bytes())
	}
	return prometheus.Gatherers{fixedFamilies(slices.Collect(maps.Values(byName)))}.Gather()
}

// fixedFamilies is a Gatherer of families gathered before.
type fixedFamilies []*dto.MetricFamily

func (f fixedFamilies) Gather() ([]*dto.MetricFamily, error) { return f, nil }

// golden gathers c once and compares the exposition with
// testdata/name.metrics.
func golden(t *testing.T, name string, c prometheus.Collector) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	goldenGather(t, name, reg)
}

// goldenGather gathers g once and compares the exposition with
// testdata/name.metrics byte for byte (rewritten with -update). Once only:
// collections change the exporters' memory.
func goldenGather(t *testing.T, name string, g prometheus.Gatherer) {
	t.Helper()
	path := filepath.Join("testdata", name+".metrics")
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got, err := exposition(fixedFamilies(mfs))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n%s", path, lineDiff(string(want), string(got)))
	}
}

// exposition renders everything g gathers in the text format, as
// client_golang writes it: families and series sorted.
func exposition(g prometheus.Gatherer) ([]byte, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// lineDiff is a line diff from want to got: lines only in want (-) and
// only in got (+), in order, repeated lines counted (a longest common
// subsequence of lines is kept).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	// common[i][j]: the longest common subsequence of w[i:] and g[j:].
	common := make([][]int, len(w)+1)
	for i := range common {
		common[i] = make([]int, len(g)+1)
	}
	for i := len(w) - 1; i >= 0; i-- {
		for j := len(g) - 1; j >= 0; j-- {
			if w[i] == g[j] {
				common[i][j] = common[i+1][j+1] + 1
			} else {
				common[i][j] = max(common[i+1][j], common[i][j+1])
			}
		}
	}
	var b strings.Builder
	for i, j := 0, 0; i < len(w) || j < len(g); {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			i, j = i+1, j+1
		case i < len(w) && (j == len(g) || common[i+1][j] >= common[i][j+1]):
			b.WriteString("- " + w[i] + "\n")
			i++
		default:
			b.WriteString("+ " + g[j] + "\n")
			j++
		}
	}
	return b.String()
}

// mixedFleet covers every way an agent can count: busy, idle, paused,
// stopping, two queues, no queue, tags without "=", bad UTF-8, nulls.
func mixedFleet(s *buildkitetest.Server, org string) {
	s.PutAgent(org, buildkitetest.Agent{
		ID: "a1", Name: "build-1", ConnectionState: "connected", Hostname: "host-1", IPAddress: "10.0.0.1",
		UserAgent: "buildkite-agent/3.80.0 (linux; amd64)", Version: "3.80.0", OSID: "linux", Arch: "amd64", Queue: "build",
		MetaData: []string{"queue=build", "size=large"}, Priority: intp(5), CreatedAt: epoch.Add(-48 * time.Hour),
		ConnectedAt: at(-24 * time.Hour), LastJobFinishedAt: at(-10 * time.Minute),
		Job: &buildkitetest.Job{ID: "j1", State: "running", StartedAt: at(-5 * time.Minute)},
	})
	s.PutAgent(org, buildkitetest.Agent{
		ID: "a2", Name: "multi-1", ConnectionState: "connected", Hostname: "host-2", IPAddress: "10.0.0.2",
		UserAgent: "buildkite-agent/3.79.0 (darwin; arm64)", Version: "3.79.0",
		MetaData: []string{"queue=deploy", "queue=build", "size=small", "size=small"}, CreatedAt: epoch.Add(-2 * time.Hour),
		ConnectedAt: at(-2 * time.Hour), LastJobFinishedAt: at(-90 * time.Minute),
	})
	s.PutAgent(org, buildkitetest.Agent{
		ID: "a3", Name: "plain-1", ConnectionState: "connected", Hostname: "host-3", IPAddress: "10.0.0.3",
		UserAgent: "buildkite-agent/3.80.0 (linux; arm64)", Version: "3.80.0",
		MetaData: []string{"docker", "size=large"}, CreatedAt: epoch.Add(-time.Hour), ConnectedAt: at(-time.Hour),
		Paused: true, PausedAt: at(-30 * time.Minute),
		Job: &buildkitetest.Job{ID: "j3", State: "assigned"},
	})
	s.PutAgent(org, buildkitetest.Agent{
		ID: "a4", Name: "build-2", ConnectionState: "stopping", Hostname: "host-4", IPAddress: "10.0.0.4",
		UserAgent: "buildkite-agent/3.80.0 (linux; amd64)", Version: "3.80.0", Queue: "build",
		CreatedAt: epoch.Add(-3 * time.Hour), ConnectedAt: at(-3 * time.Hour),
		Job: &buildkitetest.Job{ID: "j4", State: "running", StartedAt: at(-2 * time.Hour)},
	})
	s.PutAgent(org, buildkitetest.Agent{
		ID: "a5", Name: "odd-\xff", ConnectionState: "connected", Hostname: "host-\xfe5",
		UserAgent: "", Version: "3.78.1", MetaData: []string{"queue=", "team=\xffx"},
		CreatedAt: epoch.Add(-5 * time.Hour),
	})
	s.PutAgent(org, buildkitetest.Agent{
		ID: "a6", Name: "deploy-1", ConnectionState: "connected", Hostname: "host-6", IPAddress: "10.0.0.6",
		UserAgent: "buildkite-agent/3.80.0 (linux; amd64)", Version: "3.80.0", OSID: "windows", Queue: "deploy",
		CreatedAt: epoch.Add(-6 * time.Hour), ConnectedAt: at(-6 * time.Hour), LastJobFinishedAt: at(-6 * time.Hour),
		Paused: true, PausedAt: at(-time.Hour),
	})
}

func TestMixedFleet(t *testing.T) {
	cfg := defaults("acme")
	cfg.Tags = []string{"size", "queue", "docker"}
	e := newEnv(t, cfg)
	mixedFleet(e.server, "acme")
	e.golden("mixed_fleet")
}

func TestNoAgentDetails(t *testing.T) {
	cfg := defaults("acme")
	cfg.AgentDetails = false
	e := newEnv(t, cfg)
	mixedFleet(e.server, "acme")
	e.golden("no_agent_details")
}

func TestLint(t *testing.T) {
	cfg := defaults("acme")
	cfg.Tags = []string{"size"}
	e := newEnv(t, cfg)
	mixedFleet(e.server, "acme")
	problems, err := testutil.GatherAndLint(served{context.Background(), e.exporter})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func agentInQueue(id, queue string) buildkitetest.Agent {
	return buildkitetest.Agent{
		ID: id, Name: "agent-" + id, ConnectionState: "connected", Hostname: "host-" + id,
		Version: "3.80.0", Queue: queue, CreatedAt: epoch.Add(-time.Hour),
	}
}

// collect scrapes e once, as /metrics does.
func collect(t *testing.T, e *collector.Exporter) {
	t.Helper()
	if _, err := (served{context.Background(), e}).Gather(); err != nil {
		t.Fatal(err)
	}
}

// A queue whose agents all left keeps zero-filled series for the queue
// retention, and then loses them; configured queues never do.
func TestQueueZeroFillAndRetention(t *testing.T) {
	cfg := defaults("acme")
	cfg.Queues = []string{"gpu"}
	cfg.QueueRetention = 2 * time.Hour
	cfg.AgentDetails = false
	cfg.DepartureLookups = 0
	e := newEnv(t, cfg)
	e.server.PutAgent("acme", agentInQueue("b1", "build"))
	e.server.PutAgent("acme", agentInQueue("d1", "deploy"))
	collect(t, e.exporter)

	e.server.RemoveAgent("acme", "d1")
	e.clock.Advance(time.Hour)
	e.golden("queue_vanished")

	e.clock.Advance(90 * time.Minute) // deploy last seen 2.5 h ago
	e.golden("queue_expired")
}

// Any failed page: buildkite_up 0, health families, counters, and no
// fleet or per-agent series at all.
func TestFailedPage(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	for i := range 150 {
		e.server.PutAgent("acme", agentInQueue(string(rune('a'+i/26))+string(rune('a'+i%26)), "build"))
	}
	collect(t, e.exporter) // a good listing first: memory must survive the failure
	e.server.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPage(2), Status: http.StatusBadGateway, Body: `{"message":"bad gateway"}`})
	e.clock.Advance(time.Minute)
	e.golden("failed_page")
}

// Departures, by the state Get reports; a 404 and lookups beyond the
// budget count as unknown; departed agents expire after the retention.
func TestDepartures(t *testing.T) {
	tests := []struct {
		name    string
		lookups int
		golden  string
	}{
		{"every agent looked up", 10, "departures"},
		{"lookups disabled", 0, "departures_no_lookups"},
		{"budget of two", 2, "departures_budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults("acme")
			cfg.DepartureLookups = tt.lookups
			e := newEnv(t, cfg)
			for _, id := range []string{"d1", "d2", "d3", "d4", "d5"} {
				e.server.PutAgent("acme", agentInQueue(id, "build"))
			}
			multi := agentInQueue("d6", "")
			multi.MetaData = []string{"queue=build", "queue=deploy"}
			e.server.PutAgent("acme", multi)
			collect(t, e.exporter)

			e.clock.Advance(time.Minute)
			e.server.SetConnectionState("acme", "d1", "lost")
			e.server.SetConnectionState("acme", "d2", "stopped")
			e.server.SetConnectionState("acme", "d3", "disconnected")
			e.server.RemoveAgent("acme", "d4")
			e.server.SetConnectionState("acme", "d6", "lost")
			e.golden(tt.golden)

			// Memory of departed agents ends an hour after they were
			// last listed; the counters stay.
			e.clock.Advance(time.Hour)
			e.golden(tt.golden + "_expired")
		})
	}
}

// An agent that a shifting page hid is not a departure when Get shows it
// still connected.
func TestSkippedAgentIsNotADeparture(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	for _, id := range []string{"s1", "s2"} {
		e.server.PutAgent("acme", agentInQueue(id, "build"))
	}
	collect(t, e.exporter)
	remove := e.server.InjectFault(buildkitetest.Fault{
		Match: buildkitetest.MatchPath("/agents"), Times: 1, Status: http.StatusOK,
		Body: strings.Replace(agentJSON("s1"), "\n", "", -1),
	})
	defer remove()
	e.clock.Advance(time.Minute)
	got := departures(t, e.exporter)
	if got != 0 {
		t.Errorf("departures = %v, want 0: s2 was hidden by paging, not gone", got)
	}
}

func agentJSON(id string) string {
	return `[{"id":"` + id + `","name":"agent-` + id + `","connection_state":"connected","hostname":"host-` + id +
		`","version":"3.80.0","queue":"build","created_at":"2026-11-01T11:00:00.000Z","meta_data":[],"job":null,"priority":null}]`
}

func departures(t *testing.T, e *collector.Exporter) float64 {
	t.Helper()
	return sum(families(t, e), "buildkite_agent_departures_total")
}

// Several organizations share one token; one it cannot see fails alone.
func TestTwoOrganizations(t *testing.T) {
	e := newEnv(t, defaults("acme", "globex"))
	e.server.AddTokenForOrgs("limited", []string{"acme"}, "read_agents")
	api, err := client.New(client.Config{BaseURL: e.server.URL, Token: client.StaticToken("limited"), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg := defaults("acme", "globex")
	cfg.Now = e.clock.Now
	cfg.AgentDetails = false
	exporter, err := collector.New(api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.exporter = exporter
	e.server.PutAgent("acme", agentInQueue("x1", "build"))
	e.server.PutAgent("globex", agentInQueue("y1", "deploy"))
	e.golden("two_organizations")
}

func requests(e *env) int {
	n := 0
	for _, r := range e.server.Requests() {
		if strings.Contains(r.Path, "/agents") {
			n++
		}
	}
	return n
}

// Within --collector.min-interval the result comes from memory; after it,
// the API is asked again.
func TestMinInterval(t *testing.T) {
	cfg := defaults("acme")
	cfg.MinInterval = 30 * time.Second
	e := newEnv(t, cfg)
	e.server.PutAgent("acme", agentInQueue("m1", "build"))
	collect(t, e.exporter)
	e.clock.Advance(29 * time.Second)
	collect(t, e.exporter)
	if got := requests(e); got != 1 {
		t.Fatalf("requests within the interval = %d, want 1", got)
	}
	e.clock.Advance(time.Second)
	collect(t, e.exporter)
	if got := requests(e); got != 2 {
		t.Fatalf("requests after the interval = %d, want 2", got)
	}
}

// Concurrent scrapes share one collection.
func TestConcurrentScrapesShareACollection(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	for i := range 250 {
		e.server.PutAgent("acme", agentInQueue(string(rune('a'+i/26))+string(rune('a'+i%26)), "build"))
	}
	e.server.InjectFault(buildkitetest.Fault{Delay: 50 * time.Millisecond})
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			collect(t, e.exporter)
		}()
	}
	close(start)
	wg.Wait()
	// 20 scrapes arriving together: at most a few collections of 3 pages,
	// never one per scrape.
	if got := requests(e); got > 6 {
		t.Errorf("20 concurrent scrapes made %d requests, want at most 6 (3 pages, shared)", got)
	}
}

// A 429 blocks the organization until the reset: the next scrapes answer
// at once with the latest complete result (buildkite_up 1, with its own
// collection's timestamp, the current budgets) and send nothing.
func TestRateLimited(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	e.server.PutAgent("acme", agentInQueue("r1", "build"))
	collect(t, e.exporter) // the budget looks ample: no pacing
	e.server.SetRateLimit(1)
	e.clock.Advance(time.Second)
	collect(t, e.exporter) // 429
	e.clock.Advance(time.Second)
	before := len(e.server.Requests())
	e.golden("rate_limited")
	if got := len(e.server.Requests()); got != before {
		t.Errorf("a scrape inside the 429 window sent %d requests", got-before)
	}
	e.clock.Advance(time.Minute)
	if got := sum(families(t, e.exporter), "buildkite_up"); got != 1 {
		t.Errorf("buildkite_up after the window = %v, want 1", got)
	}
}

// The scrape's deadline reaches the collection: a slow API makes a scrape
// bound to 100 ms answer buildkite_up 0 promptly.
func TestScrapeDeadline(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	e.server.PutAgent("acme", agentInQueue("t1", "build"))
	e.server.InjectFault(buildkitetest.Fault{Delay: 5 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if got := sum(familyMap(t, served{ctx, e.exporter}), "buildkite_up"); got != 0 {
		t.Errorf("buildkite_up = %v, want 0", got)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("a scrape bound to 100ms took %v", took)
	}
}

// lineDiff tells order and repeats apart, not only missing lines.
func TestLineDiff(t *testing.T) {
	tests := []struct{ want, got, diff string }{
		{"a\nb", "a\nb", ""},
		{"a\nb", "b\na", "- a\n+ a\n"},
		{"a\nb", "a\nb\nb", "+ b\n"},
		{"a\nb\nc", "a\nx\nc", "- b\n+ x\n"},
	}
	for _, tt := range tests {
		if got := lineDiff(tt.want, tt.got); got != tt.diff {
			t.Errorf("lineDiff(%q, %q) = %q, want %q", tt.want, tt.got, got, tt.diff)
		}
	}
}

// An invalid Config is an error, not silently corrected.
func TestNewRefusesNegativeLookups(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	cfg := defaults("acme")
	cfg.DepartureLookups = -1
	if _, err := collector.New(e.api, cfg); err == nil {
		t.Error("negative departure lookups accepted")
	}
}
