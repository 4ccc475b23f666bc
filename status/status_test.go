package status_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
	"github.com/buildkite-exporter/buildkite_exporter/status"
)

// testToken looks like a real Buildkite token. The status page is never
// given it; the tests check it cannot leak through error texts either.
const testToken = "bkua_status_test_token_0123456789abcdef"

var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	server   *buildkitetest.Server
	clock    *buildkitetest.Clock
	exporter *collector.Exporter
	handler  http.Handler
}

// newEnv wires a fake Buildkite, the real client and collector, and the
// status handler on one fake clock.
func newEnv(t *testing.T, orgs ...string) *env {
	t.Helper()
	server := buildkitetest.NewServer()
	t.Cleanup(server.Close)
	clock := buildkitetest.NewClock(epoch)
	server.SetClock(clock.Now)
	server.SetRateLimit(200)
	server.AddToken(testToken, "read_agents")
	for _, org := range orgs {
		server.AddOrganization(org)
	}
	api, err := client.New(client.Config{
		BaseURL: server.URL, Token: client.StaticToken(testToken), Now: clock.Now, RetryBackoff: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	exporter, err := collector.New(api, collector.Config{
		Organizations: orgs, AgentDetails: true, DepartureLookups: 10, Timeout: 10 * time.Second,
		QueueRetention: 24 * time.Hour, AgentRetention: time.Hour, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{server: server, clock: clock, exporter: exporter, handler: status.Handler(exporter.Status, clock.Now)}
}

// collect runs one collection, as a scrape does. The context carries a real
// deadline: without one the collector derives it from the injected (fake)
// clock, which lies in the past of the real one.
func (e *env) collect() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.exporter.Collection(ctx)
}

func at(d time.Duration) *time.Time {
	t := epoch.Add(d)
	return &t
}

// fleet: queue build has 3 connected (1 busy, 2 idle) and a stopping agent
// finishing a job; queue deploy has 3 connected (1 busy, 1 idle never used,
// 1 paused).
func fleet(s *buildkitetest.Server, org string) {
	put := func(a buildkitetest.Agent) {
		if a.ConnectionState == "" {
			a.ConnectionState = "connected"
		}
		if a.Version == "" {
			a.Version = "3.80.0"
		}
		a.Hostname = "host-" + a.ID
		a.CreatedAt = epoch.Add(-48 * time.Hour)
		s.PutAgent(org, a)
	}
	put(buildkitetest.Agent{ID: "a1", Name: "build-busy", Queue: "build", ConnectedAt: at(-24 * time.Hour),
		LastJobFinishedAt: at(-10 * time.Minute), Job: &buildkitetest.Job{ID: "job-1", State: "running", StartedAt: at(-5 * time.Minute)}})
	put(buildkitetest.Agent{ID: "a2", Name: "build-idle-old", Queue: "build", Version: "3.79.0", ConnectedAt: at(-24 * time.Hour),
		LastJobFinishedAt: at(-3 * time.Hour)})
	put(buildkitetest.Agent{ID: "a3", Name: "build-idle-new", Queue: "build", ConnectedAt: at(-24 * time.Hour),
		LastJobFinishedAt: at(-20 * time.Minute)})
	put(buildkitetest.Agent{ID: "a4", Name: "deploy-fresh", Queue: "deploy", ConnectedAt: at(-time.Hour)})
	put(buildkitetest.Agent{ID: "a5", Name: "deploy-paused", Queue: "deploy", ConnectedAt: at(-24 * time.Hour),
		LastJobFinishedAt: at(-4 * time.Hour), Paused: true, PausedAt: at(-time.Hour)})
	put(buildkitetest.Agent{ID: "a6", Name: "build-stopping", Queue: "build", ConnectionState: "stopping", ConnectedAt: at(-24 * time.Hour),
		Job: &buildkitetest.Job{ID: "job-6", State: "running", StartedAt: at(-2 * time.Hour)}})
	put(buildkitetest.Agent{ID: "a7", Name: "deploy-busy", Queue: "deploy", ConnectedAt: at(-24 * time.Hour),
		Job: &buildkitetest.Job{ID: "job-7", State: "running", StartedAt: at(-30 * time.Minute)}})
}

type response struct {
	code   int
	header http.Header
	body   string
}

func get(t *testing.T, h http.Handler, method, target string) response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return response{code: rec.Code, header: rec.Result().Header, body: string(body)}
}

func getHTML(t *testing.T, h http.Handler) string {
	t.Helper()
	r := get(t, h, http.MethodGet, "/status")
	if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /status: %d %s\n%s", r.code, r.header.Get("Content-Type"), r.body)
	}
	if !strings.Contains(r.body, `<meta http-equiv="refresh" content="30">`) {
		t.Error("the page does not refresh itself")
	}
	if strings.Contains(strings.ToLower(r.body), "<script") {
		t.Error("the page has a script")
	}
	return r.body
}

func getJSON(t *testing.T, h http.Handler) (status.Page, map[string]any) {
	t.Helper()
	r := get(t, h, http.MethodGet, "/status?format=json")
	if r.code != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /status?format=json: %d %s\n%s", r.code, r.header.Get("Content-Type"), r.body)
	}
	var page status.Page
	if err := json.Unmarshal([]byte(r.body), &page); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.body), &raw); err != nil {
		t.Fatal(err)
	}
	return page, raw
}

var (
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
	spaceRE = regexp.MustCompile(`\s+`)
)

// text is the page's visible text, white space collapsed.
func text(page string) string {
	if i := strings.Index(page, "</style>"); i >= 0 {
		page = page[i:]
	}
	return strings.TrimSpace(spaceRE.ReplaceAllString(html.UnescapeString(tagRE.ReplaceAllString(page, " ")), " "))
}

// queueRow returns the numbers of one row of the queue table.
func queueRow(t *testing.T, page, queue string) map[string]string {
	t.Helper()
	re := regexp.MustCompile(`(?s)<tr data-queue="` + regexp.QuoteMeta(queue) + `"[^>]*>(.*?)</tr>`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no row for queue %q in the queue table", queue)
	}
	cells := map[string]string{}
	for _, c := range regexp.MustCompile(`data-col="(\w+)">(\d+)<`).FindAllStringSubmatch(m[1], -1) {
		cells[c[1]] = c[2]
	}
	if p := regexp.MustCompile(`class="pct">([^<]*)<`).FindStringSubmatch(m[1]); p != nil {
		cells["utilisation"] = p[1]
	}
	return cells
}

func TestHealthy(t *testing.T) {
	e := newEnv(t, "acme")
	fleet(e.server, "acme")
	e.collect()
	e.clock.Advance(20 * time.Second) // the page is looked at later than the scrape

	page := getHTML(t, e.handler)
	for queue, want := range map[string]map[string]string{
		"build":  {"connected": "3", "busy": "2", "idle": "2", "paused": "0", "utilisation": "67%"},
		"deploy": {"connected": "3", "busy": "1", "idle": "1", "paused": "1", "utilisation": "33%"},
	} {
		got := queueRow(t, page, queue)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("queue %s: %s = %q, want %q", queue, k, got[k], v)
			}
		}
	}
	if !strings.Contains(page, `style="width: 67%"`) {
		t.Error("no 67% utilisation bar for queue build")
	}
	txt := text(page)
	for _, want := range []string{
		"acme up",
		"7 agents listed", "6 connected", "3 busy", "3 idle", "1 paused", "2 queues",
		"Latest collection 2026-11-01 12:00:00 UTC (20s ago)",
		"1 page, 1 request; rate limit 199/200 left, window resets in 40s.",
		"stopping 1",                 // other states of build
		"3.80.0 6 build 3, deploy 3", // versions, each agent once
		"3.79.0 1 build 1",           //
		"deploy-fresh never used",    // never ran a job
		"No agent left the list",     // no departures yet
		"2026-11-01 12:00:00 UTC (20s ago) ok 0ms 1 1 7 199/200, reset 2026-11-01 12:01:00 UTC", // collections table
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("page lacks %q\n%s", want, txt)
		}
	}
	// Idle the longest, oldest first; jobs running the longest, oldest first.
	assertOrder(t, txt, "Agents idle the longest", "build-idle-old", "deploy-fresh", "build-idle-new", "Jobs running the longest")
	assertOrder(t, txt, "Jobs running the longest", "build-stopping", "deploy-busy", "build-busy", "Agent versions")
	if strings.Contains(txt, "deploy-paused") {
		t.Error("a paused agent is listed as idle")
	}

	p, raw := getJSON(t, e.handler)
	if len(p.Organizations) != 1 {
		t.Fatalf("%d organizations", len(p.Organizations))
	}
	o := p.Organizations[0]
	if !o.Collected || !o.OK || o.Latest == nil || !o.Latest.OK || o.Latest.Pages != 1 || o.Latest.Requests != 1 || o.Latest.Agents != 7 {
		t.Errorf("latest collection: %+v", o.Latest)
	}
	if rl := o.Latest.RateLimit; rl == nil || rl.Limit != 200 || rl.Remaining != 199 || rl.ResetSeconds != 60 || !rl.ResetAt.Equal(epoch.Add(time.Minute)) {
		t.Errorf("rate limit: %+v", rl)
	}
	if *o.Agents != (status.AgentTotals{Listed: 7, Connected: 6, Busy: 3, Idle: 3, Paused: 1}) {
		t.Errorf("totals: %+v", *o.Agents)
	}
	if len(o.Queues) != 2 || o.Queues[0].Queue != "build" || o.Queues[0].Connected != 3 || o.Queues[0].Busy != 2 ||
		o.Queues[0].States["stopping"] != 1 || o.Queues[0].Utilisation == nil || fmt.Sprintf("%.3f", *o.Queues[0].Utilisation) != "0.667" {
		t.Errorf("queues: %+v", o.Queues)
	}
	if len(o.LongestIdle) != 3 || o.LongestIdle[0].Name != "build-idle-old" || o.LongestIdle[0].IdleSeconds != 3*3600 ||
		!o.LongestIdle[1].NeverUsed || o.LongestIdle[1].LastJobFinishedAt != nil || !o.LongestIdle[1].IdleSince.Equal(epoch.Add(-time.Hour)) {
		t.Errorf("longest idle: %+v", o.LongestIdle)
	}
	if len(o.LongestJobs) != 3 || o.LongestJobs[0].JobID != "job-6" || o.LongestJobs[0].RunningSeconds != 7200 || o.LongestJobs[0].Queue != "build" {
		t.Errorf("longest jobs: %+v", o.LongestJobs)
	}
	// Times are RFC 3339 strings.
	org := raw["organizations"].([]any)[0].(map[string]any)
	for _, v := range []any{raw["generated_at"], org["latest"].(map[string]any)["end"], org["longest_running_jobs"].([]any)[0].(map[string]any)["started_at"]} {
		s, _ := v.(string)
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			t.Errorf("time %v is not RFC 3339: %v", v, err)
		}
	}
	if raw["generated_at"] != "2026-11-01T12:00:20Z" {
		t.Errorf("generated_at = %v", raw["generated_at"])
	}
}

func assertOrder(t *testing.T, s string, words ...string) {
	t.Helper()
	pos := -1
	for _, w := range words {
		i := strings.Index(s[pos+1:], w)
		if i < 0 {
			t.Errorf("%q missing or out of order in %v", w, words)
			return
		}
		pos += 1 + i
	}
}

func TestFailing(t *testing.T) {
	e := newEnv(t, "acme")
	fleet(e.server, "acme")
	e.collect()
	// An agent leaves and Buildkite says it was lost.
	e.clock.Advance(time.Minute)
	e.server.SetConnectionState("acme", "a7", buildkitetest.StateLost)
	e.collect()
	// Then the token is revoked; the answer even echoes a credential.
	e.clock.Advance(time.Minute)
	e.server.InjectFault(buildkitetest.Fault{Status: http.StatusUnauthorized,
		Body: `{"message":"Authentication required: Authorization: Bearer ` + testToken + ` is not valid"}`})
	e.collect()
	e.clock.Advance(10 * time.Second)

	page := getHTML(t, e.handler)
	txt := text(page)
	for _, want := range []string{
		"acme failing",
		"The latest collection failed (2026-11-01 12:02:00 UTC, 10s ago)",
		"Buildkite rejected the API token (HTTP 401): it is missing, invalid or revoked.",
		"What to do: Check the token in BUILDKITE_API_TOKEN or the --buildkite.token-file file",
		"The fleet numbers are not available",
		"deploy-busy host-a7 deploy lost 2026-11-01 12:01:00 UTC", // departed agents are memory of the past
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("page lacks %q\n%s", want, txt)
		}
	}
	if strings.Contains(page, "data-queue=") || strings.Contains(txt, "agents listed") || strings.Contains(txt, "Agents idle the longest") {
		t.Error("a failed collection shows fleet numbers")
	}
	// The collections table, newest first: failed, ok, ok.
	assertOrder(t, txt, "Latest collections", "12:02:00 UTC (10s ago) failed", "Buildkite rejected the API token",
		"12:01:00 UTC (1m 10s ago) ok", "12:00:00 UTC (2m 10s ago) ok")

	p, _ := getJSON(t, e.handler)
	o := p.Organizations[0]
	if !o.Collected || o.OK || o.Latest == nil || o.Latest.OK || o.Agents != nil || len(o.Queues) != 0 || len(o.LongestIdle) != 0 || len(o.LongestJobs) != 0 {
		t.Errorf("failed organization: %+v", o)
	}
	if len(o.Collections) != 3 || o.Collections[1].Agents != 6 || !o.Collections[2].OK {
		t.Errorf("collections: %+v", o.Collections)
	}
	if !strings.Contains(o.Latest.Error, "HTTP 401") || !strings.Contains(o.Latest.Problem, "rejected the API token") || o.Latest.Advice == "" {
		t.Errorf("latest error: %+v", o.Latest)
	}
	if len(o.Departed) != 1 || o.Departed[0].Name != "deploy-busy" || o.Departed[0].State != "lost" || !o.Departed[0].At.Equal(epoch.Add(time.Minute)) {
		t.Errorf("departed: %+v", o.Departed)
	}
	assertNoCredential(t, page)
	assertNoCredential(t, get(t, e.handler, http.MethodGet, "/status?format=json").body)
}

func assertNoCredential(t *testing.T, body string) {
	t.Helper()
	for _, secret := range []string{testToken, "bkua_", "Bearer", "bearer ", "s3cret"} {
		if strings.Contains(body, secret) {
			t.Errorf("the status shows %q", secret)
		}
	}
}

func TestNotCollectedYet(t *testing.T) {
	e := newEnv(t, "acme", "other")
	page := getHTML(t, e.handler)
	txt := strings.ToLower(text(page))
	if n := strings.Count(txt, "not collected yet: scrape /metrics"); n != 2 {
		t.Errorf("%d organizations say they are not collected yet, want 2\n%s", n, txt)
	}
	if strings.Contains(txt, "failed") {
		t.Error("an organization not collected yet is shown as failed")
	}
	p, _ := getJSON(t, e.handler)
	if len(p.Organizations) != 2 || p.Organizations[0].Collected || p.Organizations[0].Latest != nil || p.Organizations[1].Name != "other" ||
		p.Organizations[0].Collections == nil || p.Organizations[0].Queues == nil || p.MetricsPath != "/metrics" {
		t.Errorf("%+v", p)
	}

	// The configured telemetry path is the one to scrape.
	h := status.Handler(e.exporter.Status, e.clock.Now, status.MetricsPath("/probe"))
	if !strings.Contains(text(getHTML(t, h)), "Not collected yet: scrape /probe") {
		t.Error("the page does not name the telemetry path")
	}
}

func TestEmptyOrganization(t *testing.T) {
	e := newEnv(t, "empty")
	e.collect()
	txt := text(getHTML(t, e.handler))
	for _, want := range []string{"empty up", "0 agents listed", "No queue: the organization has no agents.", "No idle agent.", "No job running."} {
		if !strings.Contains(txt, want) {
			t.Errorf("page lacks %q\n%s", want, txt)
		}
	}
	p, _ := getJSON(t, e.handler)
	if o := p.Organizations[0]; !o.OK || o.Agents.Listed != 0 || len(o.Queues) != 0 || o.Versions == nil {
		t.Errorf("%+v", o)
	}
}

// TestMixedOrganizations: one organization failing does not hide another.
func TestMixedOrganizations(t *testing.T) {
	e := newEnv(t, "good", "gone")
	fleet(e.server, "good")
	e.server.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/organizations/gone/"), Status: http.StatusNotFound})
	e.collect()
	page := getHTML(t, e.handler)
	if got := queueRow(t, page, "build")["connected"]; got != "3" {
		t.Errorf("good: build connected = %s", got)
	}
	txt := text(page)
	assertOrder(t, txt, "good up", "gone failing", "Buildkite does not know this organization (HTTP 404)")
}

// TestTopTen bounds the idle and job tables and checks the utilisation of a
// queue whose busy agents are stopping.
func TestTopTen(t *testing.T) {
	var agents []collector.AgentView
	for i := range 15 {
		finished := epoch.Add(-time.Duration(i+1) * time.Minute)
		agents = append(agents,
			collector.AgentView{Agent: client.Agent{ID: fmt.Sprintf("i%02d", i), Name: fmt.Sprintf("idle-%02d", i), ConnectionState: "connected", LastJobFinishedAt: finished}, QueueLabel: "q"},
			collector.AgentView{Agent: client.Agent{ID: fmt.Sprintf("b%02d", i), Name: fmt.Sprintf("busy-%02d", i), ConnectionState: "stopping",
				Job: &client.Job{ID: fmt.Sprintf("job-%02d", i), State: "running", StartedAt: finished}}, QueueLabel: "q"},
		)
	}
	agents = append(agents, collector.AgentView{Agent: client.Agent{ID: "b99", Name: "assigned", ConnectionState: "connected", Job: &client.Job{ID: "job-99", State: "assigned"}}, QueueLabel: "q"})
	snap := &collector.Snapshot{Organization: "big", Start: epoch, End: epoch, Agents: agents, Queues: []collector.QueueCounts{
		{Queue: "q", States: map[string]int{"connected": 16, "stopping": 15}, Busy: 16, Idle: 15},
		{Queue: "unused", States: map[string]int{"connected": 0, "stopping": 0}},
	}}
	h := status.Handler(func() []collector.OrgStatus {
		return []collector.OrgStatus{{Organization: "big", Latest: snap}} // no history: taken from Latest
	}, func() time.Time { return epoch })
	p, _ := getJSON(t, h)
	o := p.Organizations[0]
	if len(o.LongestIdle) != status.TopN || o.LongestIdle[0].Name != "idle-14" || o.LongestIdle[9].Name != "idle-05" {
		t.Errorf("longest idle: %+v", o.LongestIdle)
	}
	if len(o.LongestJobs) != status.TopN || o.LongestJobs[0].JobID != "job-14" || o.LongestJobs[9].JobID != "job-05" {
		t.Errorf("longest jobs: %+v", o.LongestJobs)
	}
	if u := o.Queues[0].Utilisation; u == nil || *u != 1 {
		t.Errorf("utilisation of q = %v, want capped at 1", u)
	}
	if o.Queues[1].Utilisation != nil {
		t.Errorf("utilisation of a queue without connected agents = %v, want null", *o.Queues[1].Utilisation)
	}
	if len(o.Collections) != 1 || o.Latest == nil || !o.Latest.OK || o.Latest.Agents != 31 {
		t.Errorf("collections: %+v", o.Collections)
	}
	page := getHTML(t, h)
	if got := queueRow(t, page, "unused")["utilisation"]; got != "—" {
		t.Errorf("utilisation text of an unused queue: %q", got)
	}
	if got := queueRow(t, page, "q")["utilisation"]; got != "100%" {
		t.Errorf("utilisation text of q: %q", got)
	}
}

func TestExplain(t *testing.T) {
	for _, tc := range []struct {
		err           error
		problem, todo string
	}{
		{errors.Join(&client.APIError{StatusCode: 401, Method: "GET", Path: "/v2/organizations/acme/agents"}, client.ErrUnauthorized), "rejected the API token (HTTP 401)", "BUILDKITE_API_TOKEN"},
		{fmt.Errorf("list: %w", errors.Join(&client.APIError{StatusCode: 403, Scope: "read_agents"}, client.ErrForbidden)), "may not read this organization's agents (HTTP 403)", "read_agents scope"},
		{client.ErrNotFound, "does not know this organization", "--buildkite.organization"},
		{&client.RateLimitError{Org: "acme", ResetAt: epoch, Sent: true}, "429 Too Many Requests; no request goes to this organization until 2026-11-01T12:00:00Z", "--collector.min-interval"},
		{&client.RateLimitError{Org: "acme", ResetAt: epoch}, "earlier 429 is still in force", "Wait for the reset"},
		{errors.Join(&client.APIError{StatusCode: 502}, client.ErrServer), "server error (HTTP 502)", "buildkitestatus.com"},
		{fmt.Errorf("page 2: %w", client.ErrMalformed), "could not be read", "proxy"},
		{client.ErrUnsafeLink, "redirected the request to another host", "--buildkite.api-url"},
		{client.ErrPageLimit, "did not end", "next-page links"},
		{client.ErrRejected, "rejected the request", "--buildkite.api-url"},
		{fmt.Errorf("list: %w", context.DeadlineExceeded), "did not finish in time", "scrape_timeout"},
		{context.Canceled, "cancelled", "scrape timeout"},
		{errors.New("dial tcp 10.0.0.1:443: connect: connection refused"), "could not reach Buildkite", "DNS"},
	} {
		problem, todo := status.Explain(tc.err)
		if !strings.Contains(problem, tc.problem) || !strings.Contains(todo, tc.todo) {
			t.Errorf("Explain(%v) = %q, %q; want %q, %q", tc.err, problem, todo, tc.problem, tc.todo)
		}
	}
}

// TestNoCredentialShown renders errors carrying credential-like text; none
// of it reaches the page, HTML or JSON.
func TestNoCredentialShown(t *testing.T) {
	errs := []error{
		fmt.Errorf(`Get "https://api.buildkite.com/v2/organizations/acme/agents": Authorization: Bearer %s rejected`, testToken),
		fmt.Errorf(`Get "https://exporter:s3cret@proxy.internal/v2/organizations/acme/agents": dial tcp: lookup proxy.internal: no such host`),
		fmt.Errorf("token %s is wrong: %w", testToken, client.ErrUnauthorized),
		fmt.Errorf("bearer\t%s", strings.Repeat("x", 40)),
	}
	for _, err := range errs {
		if got := status.ErrorText(err); strings.Contains(got, "Bearer") || strings.Contains(got, "bearer") || strings.Contains(got, testToken) || strings.Contains(got, "s3cret") {
			t.Errorf("ErrorText(%q) = %q", err, got)
		}
	}
	var history []collector.CollectionSummary
	for i, err := range errs {
		history = append(history, collector.CollectionSummary{Start: epoch.Add(time.Duration(i) * time.Minute), End: epoch.Add(time.Duration(i) * time.Minute), Err: err})
	}
	last := history[len(history)-1]
	latest := &collector.Snapshot{Organization: "acme", Start: last.Start, End: last.End, Err: last.Err}
	h := status.Handler(func() []collector.OrgStatus {
		return []collector.OrgStatus{{Organization: "acme", Latest: latest, History: history}}
	}, func() time.Time { return epoch.Add(time.Hour) })
	page := getHTML(t, h)
	assertNoCredential(t, page)
	if !strings.Contains(page, "[REDACTED]") {
		t.Error("no error text on the page")
	}
	assertNoCredential(t, get(t, h, http.MethodGet, "/status?format=json").body)
	// Long error texts are cut.
	if got := status.ErrorText(errors.New(strings.Repeat("é", 2000))); len([]rune(got)) > 501 {
		t.Errorf("error text of %d runes", len([]rune(got)))
	}
}

func TestRequests(t *testing.T) {
	h := status.Handler(func() []collector.OrgStatus { return nil }, nil)
	if r := get(t, h, http.MethodPost, "/status"); r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", r.code, r.header)
	}
	if r := get(t, h, http.MethodGet, "/status?format=xml"); r.code != http.StatusBadRequest {
		t.Errorf("format=xml: %d", r.code)
	}
	if r := get(t, h, http.MethodHead, "/status?format=json"); r.code != http.StatusOK || r.body != "" || r.header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d %q", r.code, r.body)
	}
	r := get(t, h, http.MethodGet, "/status?format=html")
	if r.code != http.StatusOK || !strings.Contains(r.body, "No organization is configured") {
		t.Errorf("no organization: %d\n%s", r.code, r.body)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Error("the page may be cached")
	}
}
