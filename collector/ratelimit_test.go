package collector_test

// Buildkite's real limits, against the fake's own rate limiter: 200
// requests a minute per organization, 50 per token user shared by every
// organization of the token.

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// limitEnv is one token (one client) watching organizations, each with its
// own exporter: scraped one after the other, the order of requests and so
// every budget is deterministic. The client is the same, so the token
// user's budget and its 429 windows are shared as with one exporter.
type limitEnv struct {
	t         *testing.T
	server    *buildkitetest.Server
	clock     *buildkitetest.Clock
	api       *client.Client
	requests  *collector.APIRequestCounter
	exporters []*collector.Exporter
	logs      *lockedBuffer
}

// newLimitEnv: orgs with pages of 10 agents each (10 agents a page), the
// default limits (200 per organization, 50 per user), one page at a time.
func newLimitEnv(t *testing.T, pages int, orgs ...string) *limitEnv {
	t.Helper()
	le := &limitEnv{t: t, server: buildkitetest.NewServer(), clock: buildkitetest.NewClock(epoch),
		requests: collector.NewAPIRequestCounter(), logs: &lockedBuffer{}}
	t.Cleanup(le.server.Close)
	le.server.SetClock(le.clock.Now)
	le.server.AddToken(testToken, "read_agents")
	le.server.SetRateLimit(200)
	le.server.SetUserRateLimit(50)
	var err error
	le.api, err = client.New(client.Config{BaseURL: le.server.URL, Token: client.StaticToken(testToken), Now: le.clock.Now,
		PerPage: 10, PageConcurrency: 1, RetryBackoff: time.Millisecond, Observer: le.requests})
	if err != nil {
		t.Fatal(err)
	}
	logger := level.NewFilter(log.NewLogfmtLogger(le.logs), level.AllowInfo())
	for _, org := range orgs {
		le.server.AddOrganization(org)
		for i := range pages * 10 {
			le.server.PutAgent(org, buildkitetest.Agent{ID: fmt.Sprintf("%s-%03d", org, i), Name: fmt.Sprintf("n-%03d", i),
				Version: "3.80.0", Queue: "build", CreatedAt: epoch.Add(-time.Hour + time.Duration(i)*time.Second)})
		}
		e, err := collector.New(le.api, collector.Config{Organizations: []string{org}, DepartureLookups: 10,
			QueueRetention: 24 * time.Hour, AgentRetention: time.Hour, Timeout: 10 * time.Second, Now: le.clock.Now, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		le.exporters = append(le.exporters, e)
	}
	return le
}

// gatherer scrapes every exporter in order, then reads the request counter.
func (le *limitEnv) gatherer() prometheus.Gatherer {
	var gs prometheus.Gatherers
	for _, e := range le.exporters {
		gs = append(gs, served{context.Background(), e})
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(le.requests)
	return append(gs, reg)
}

// scrape scrapes everything once and returns the requests the fake got.
func (le *limitEnv) scrape() int {
	le.t.Helper()
	before := len(le.server.Requests())
	if _, err := le.gatherer().Gather(); err != nil {
		le.t.Fatal(err)
	}
	return len(le.server.Requests()) - before
}

// Two organizations of 40 pages on one token with a per-user limit of 50:
// the second listing runs into the user's 429, after which no request
// goes to either organization before the user reset; the first keeps
// serving its result (with its timestamp), the second its failure. Both
// scopes' gauges are what the fake's headers said.
func TestUserLimitHoldsEveryOrganization(t *testing.T) {
	le := newLimitEnv(t, 40, "acme", "globex")
	if n := le.scrape(); n != 40+11 {
		t.Fatalf("first scrape: %d requests, want 51 (acme's 40 pages, globex's 10 and a 429)", n)
	}
	le.clock.Advance(time.Second)
	before := len(le.server.Requests())
	goldenGather(t, "user_limit_429", le.gatherer())
	le.clock.Advance(58 * time.Second)
	if n := le.scrape() + len(le.server.Requests()) - before; n != 0 {
		t.Errorf("inside the user's 429 window: %d requests", n)
	}
	if n := len(le.logs.lines("rate limited (HTTP 429)")); n != 2 {
		t.Errorf("want one line per organization about the 429 window, have %d:\n%s", n, le.logs.String())
	}
	// After the reset the budget is unknown again: acme lists.
	le.clock.Advance(2 * time.Second)
	if n := le.scrape(); n == 0 {
		t.Error("no request after the user reset")
	}
}

// Pacing: a listing the budget cannot cover is not started; the previous
// result is served with its own timestamp, duration and requests, and the
// reason is logged once.
func TestPacingServesThePreviousResult(t *testing.T) {
	le := newLimitEnv(t, 40, "acme")
	if n := le.scrape(); n != 40 {
		t.Fatalf("first scrape: %d requests, want 40", n)
	}
	le.clock.Advance(10 * time.Second) // 10 of the user's 50 left, 40 needed
	if n := le.scrape(); n != 0 {
		t.Errorf("paced scrape: %d requests", n)
	}
	le.clock.Advance(10 * time.Second)
	goldenGather(t, "paced", le.gatherer())
	lines := le.logs.lines("budget too low")
	if len(lines) != 1 {
		t.Fatalf("want one pacing line, have %d:\n%s", len(lines), le.logs.String())
	}
	for _, want := range []string{"scope=rest_user", "requests_needed=40", "budget_left=10", "reset_seconds=50", "served_collection=2026-11-01T12:00:00Z"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("the pacing line lacks %s: %s", want, lines[0])
		}
	}
	le.clock.Advance(41 * time.Second) // the window has reset
	if n := le.scrape(); n != 40 {
		t.Errorf("after the reset: %d requests, want 40", n)
	}
	fams := familyMap(t, le.gatherer())
	if got, want := sum(fams, "buildkite_collection_timestamp_seconds"), float64(epoch.Add(61*time.Second).Unix()); got != want {
		t.Errorf("collection timestamp %v, want %v", got, want)
	}
	if n := len(le.logs.lines("collections resume")); n != 1 {
		t.Errorf("want one line when collections resume, have %d", n)
	}
}

// Links name https://api.buildkite.com whatever host was asked (the
// fake's default, as Buildkite's): a multi-page fleet is listed completely
// and every request goes to the configured host.
func TestLinksNamingAnotherHost(t *testing.T) {
	cfg := defaults("acme")
	cfg.AgentDetails = false
	e := newEnv(t, cfg)
	for i := range 250 {
		e.server.PutAgent("acme", agentInQueue(fmt.Sprintf("l%03d", i), "build"))
	}
	e.golden("links_elsewhere")
	host := strings.TrimPrefix(e.server.HTTPServer.URL, "http://")
	pages := 0
	for _, r := range e.server.Requests() {
		if r.Host != host {
			t.Errorf("a request to %s, not the configured %s", r.Host, host)
		}
		if q, _ := url.ParseQuery(r.RawQuery); strings.HasSuffix(r.Path, "/agents") && q.Get("page") != "" {
			pages++
		}
	}
	if pages != 2 {
		t.Errorf("%d requests for pages after the first, want 2", pages)
	}
}

// An agent member of an unexpected type or format is absent for that
// agent only, which still counts, and counted by field; the log names
// each field once per change, not per scrape.
func TestFieldErrors(t *testing.T) {
	logs := &lockedBuffer{}
	cfg := defaults("acme")
	cfg.Logger = log.NewLogfmtLogger(logs)
	e := newEnv(t, cfg)
	odd := agentInQueue("odd", "build")
	odd.Priority = intp(3)
	odd.Extra = map[string]any{"priority": map[string]any{"number": 1}, "created_at": "2026-01-02 03:04:05 UTC"}
	e.server.PutAgent("acme", odd)
	plain := agentInQueue("plain", "build")
	plain.Priority = intp(2)
	e.server.PutAgent("acme", plain)
	e.golden("field_errors")
	e.clock.Advance(time.Minute)
	fams := families(t, e.exporter)
	for _, field := range []string{"priority", "created_at"} {
		if got := sum(fams, "buildkite_exporter_agent_field_errors_total", "field", field); got != 2 {
			t.Errorf("%s errors after two listings: %v, want 2", field, got)
		}
		if n := len(logs.lines("field=" + field)); n != 1 {
			t.Errorf("%s logged %d times over two listings, want 1", field, n)
		}
	}
	e.server.UpdateAgent("acme", "odd", func(a *buildkitetest.Agent) { a.Extra = nil })
	e.clock.Advance(time.Minute)
	families(t, e.exporter)
	if n := len(logs.lines("decodes again")); n != 2 {
		t.Errorf("want one line per field that decodes again, have %d", n)
	}
}
