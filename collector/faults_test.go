package collector_test

// The fault matrix: every way Buildkite (or the network, or a proxy in
// front of it) can fail, injected into the fake and seen through the real
// client and collector. For each fault the exporter must not panic, must
// log one clear line per change of state (not one per scrape), must report
// buildkite_up 0 with no partial fleet numbers, must not hammer the API,
// and must recover when the fault clears.

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

const (
	faultOrg   = "acme"
	fleetSize  = 120 // three pages of perPage
	perPage    = 50
	msgFailed  = `msg="collection failed; buildkite_up is 0 until it recovers"`
	msgRecover = `msg="collection recovered"`
	msgHold    = `msg="rate limited (HTTP 429): no request until the reset; serving the latest complete result"`
	msgResume  = `msg="the rate-limit budget covers a listing again; collections resume"`
)

// lockedBuffer is a log sink that collections may write to from other
// goroutines while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the log lines containing substr.
func (b *lockedBuffer) lines(substr string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// faultEnv is the fake on an httptest server of our own, so that a
// middleware can do what a Fault cannot (redirects, refusing connections),
// a second server that must never be contacted, and an exporter logging
// at debug level into a buffer.
type faultEnv struct {
	t        *testing.T
	fake     *buildkitetest.Fake
	api      *httptest.Server
	url      string // the client's base URL
	foreign  *httptest.Server
	clock    *buildkitetest.Clock
	client   *client.Client
	exporter *collector.Exporter
	logs     *lockedBuffer

	foreignHits     atomic.Int32
	foreignWithAuth atomic.Int32
	redirectTo      atomic.Pointer[string] // list pages > 1 redirect here when set
	refuse          atomic.Bool            // the client's dials go to a closed port
	transport       *http.Transport
}

func newFaultEnv(t *testing.T, mod func(*client.Config, *collector.Config)) *faultEnv {
	t.Helper()
	fe := &faultEnv{t: t, fake: buildkitetest.NewFake(), clock: buildkitetest.NewClock(epoch), logs: &lockedBuffer{}}
	fe.fake.SetClock(fe.clock.Now)
	fe.fake.AddToken(testToken, "read_agents")
	fe.fake.AddOrganization(faultOrg)
	handler := fe.fake.Handler()
	fe.api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := fe.redirectTo.Load(); to != nil && r.URL.Query().Get("page") != "" && r.URL.Query().Get("page") != "1" {
			http.Redirect(w, r, *to+r.URL.RequestURI(), http.StatusFound)
			return
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(fe.api.Close)
	fe.foreign = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fe.foreignHits.Add(1)
		if r.Header.Get("Authorization") != "" {
			fe.foreignWithAuth.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[]`))
	}))
	t.Cleanup(fe.foreign.Close)
	fe.url = fe.api.URL + "/v2"

	// A closed port for "connection refused".
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if fe.refuse.Load() {
				addr = closed
			}
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 8,
	}
	t.Cleanup(transport.CloseIdleConnections)
	fe.transport = transport

	ccfg := client.Config{
		BaseURL:      fe.url,
		Token:        client.StaticToken(testToken),
		HTTPClient:   &http.Client{Transport: transport, Timeout: 30 * time.Second},
		Now:          fe.clock.Now,
		RetryBackoff: time.Millisecond,
		PerPage:      perPage,
		// One page at a time: with several in flight, a page cancelled by
		// another's failure can reach the fake after the next scrape began,
		// and the fake would count it against that scrape. Concurrent
		// paging has its own tests in client/ and collector_test.go.
		PageConcurrency: 1,
	}
	logger := level.NewFilter(log.NewLogfmtLogger(fe.logs), level.AllowDebug())
	cfg := collector.Config{
		Organizations: []string{faultOrg}, AgentDetails: true, DepartureLookups: 10,
		Tags: []string{"size"}, QueueRetention: 24 * time.Hour, AgentRetention: time.Hour,
		Timeout: 10 * time.Second, Now: fe.clock.Now, Logger: logger,
	}
	if mod != nil {
		mod(&ccfg, &cfg)
	}
	if fe.client, err = client.New(ccfg); err != nil {
		t.Fatal(err)
	}
	if fe.exporter, err = collector.New(fe.client, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if strings.Contains(fe.logs.String(), testToken) {
			t.Errorf("the token appears in the logs:\n%s", fe.logs.String())
		}
	})
	return fe
}

// fleet puts n agents, oldest first, in the build and deploy queues.
func (fe *faultEnv) fleet(n int) {
	for i := range n {
		q := "build"
		if i%5 == 0 {
			q = "deploy"
		}
		fe.fake.PutAgent(faultOrg, buildkitetest.Agent{
			ID: fmt.Sprintf("agent-%04d", i), Name: fmt.Sprintf("n-%04d", i), ConnectionState: "connected",
			Hostname: fmt.Sprintf("h-%04d", i), Version: "3.80.0", Queue: q, MetaData: []string{"queue=" + q, "size=large"},
			CreatedAt: epoch.Add(-time.Hour + time.Duration(i)*time.Second),
		})
	}
}

// listURL is the list endpoint for page p, as the fake would link it.
func (fe *faultEnv) listURL(base string, p int) string {
	return fmt.Sprintf("%s/organizations/%s/agents?page=%d&per_page=%d", base, faultOrg, p, perPage)
}

func (fe *faultEnv) requests() int { return len(fe.fake.Requests()) }

// families gathers c with a pedantic registry; a gather error fails the
// test (a duplicate or invalid series would break the whole scrape).
func families(t *testing.T, e *collector.Exporter) map[string]*dto.MetricFamily {
	t.Helper()
	return familyMap(t, served{context.Background(), e})
}

// familyMap gathers g once, by family name.
func familyMap(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !utf8.ValidString(lp.GetValue()) {
					t.Errorf("%s: label %s=%q is not valid UTF-8", mf.GetName(), lp.GetName(), lp.GetValue())
				}
			}
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// sum adds up a family's series whose labels include every pair in match.
func sum(fams map[string]*dto.MetricFamily, name string, match ...string) float64 {
	var total float64
	for _, m := range fams[name].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			if labels[match[i]] != match[i+1] {
				ok = false
			}
		}
		if ok {
			total += value(m)
		}
	}
	return total
}

func series(fams map[string]*dto.MetricFamily, name string) int { return len(fams[name].GetMetric()) }

// fleetFamilies are the families that describe the current fleet: none of
// them may appear while buildkite_up is 0.
func fleetFamilies(fams map[string]*dto.MetricFamily) []string {
	var out []string
	for name := range fams {
		if name == "buildkite_agent_departed_timestamp_seconds" || name == "buildkite_agent_departures_total" {
			continue // memory of the past, kept on purpose
		}
		if strings.HasPrefix(name, "buildkite_agents") || strings.HasPrefix(name, "buildkite_agent_") {
			out = append(out, name)
		}
	}
	return out
}

// checkDown asserts a failed collection's exposition.
func checkDown(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	if got := sum(fams, "buildkite_up"); got != 0 || series(fams, "buildkite_up") != 1 {
		t.Errorf("buildkite_up = %v (%d series), want 0", got, series(fams, "buildkite_up"))
	}
	if f := fleetFamilies(fams); len(f) != 0 {
		t.Errorf("partial fleet series while buildkite_up is 0: %v", f)
	}
	for _, name := range []string{"buildkite_scrape_duration_seconds", "buildkite_scrape_api_requests", "buildkite_agent_departures_total"} {
		if series(fams, name) == 0 {
			t.Errorf("%s missing from a failed collection", name)
		}
	}
	if got := sum(fams, "buildkite_agent_departures_total"); got != 0 {
		t.Errorf("a failed collection counted %v departures", got)
	}
}

// checkUp asserts a good collection of the whole fleet of n agents.
func checkUp(t *testing.T, fams map[string]*dto.MetricFamily, n int) {
	t.Helper()
	if got := sum(fams, "buildkite_up"); got != 1 {
		t.Errorf("buildkite_up = %v, want 1", got)
	}
	if got := sum(fams, "buildkite_agents"); got != float64(n) {
		t.Errorf("buildkite_agents sums to %v, want %d", got, n)
	}
	if got := series(fams, "buildkite_agent_info"); got != n {
		t.Errorf("%d buildkite_agent_info series, want %d", got, n)
	}
	if got := sum(fams, "buildkite_agents_by_tag", "key", "size", "value", "large"); got != float64(n) {
		t.Errorf("buildkite_agents_by_tag{size=large} = %v, want %d", got, n)
	}
	if got := sum(fams, "buildkite_agent_departures_total"); got != 0 {
		t.Errorf("%v departures counted, want 0: no agent left", got)
	}
}

type faultCase struct {
	name string
	// inject starts the fault and returns what clears it.
	inject func(fe *faultEnv) (clearFault func())
	// log: substrings of the one failure log line.
	log []string
	// maxRequests bounds the API requests of one failing scrape.
	maxRequests int
	// timeout, when set, is the collector's Timeout (--buildkite.timeout).
	// Each failing scrape gets a longer deadline of its own and must still
	// answer within timeout plus slack: the exporter's own bound ends the
	// collection, not the scrape's.
	timeout time.Duration
	mod     func(*client.Config, *collector.Config)
	// servesLatest: a 429 holds listings back, and every scrape of the
	// fault serves the latest complete result (buildkite_up 1, its own
	// collection timestamp); the one log line is the hold, not a failure.
	servesLatest bool
}

func status(code int, body string) func(fe *faultEnv) func() {
	return func(fe *faultEnv) func() {
		return fe.fake.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/agents"), Status: code, Body: body})
	}
}

func fault(ft buildkitetest.Fault) func(fe *faultEnv) func() {
	return func(fe *faultEnv) func() { return fe.fake.InjectFault(ft) }
}

// Bounds on requests: a failing page is tried 1 + MaxRetries (2) times
// when the failure is worth retrying (5xx, transport errors, a body cut
// short), once otherwise; a page fetched alongside it may be re-sent once
// by net/http when its connection closes under it.
func faultCases() []faultCase {
	page := buildkitetest.MatchPage
	return []faultCase{
		{name: "401 unauthorized", inject: status(401, `{"message":"`+buildkitetest.MsgUnauthorized+`"}`),
			log: []string{"HTTP 401", "unauthorized", "Authentication required"}, maxRequests: 1},
		{name: "403 without read_agents", inject: status(403, `{"message":"Your access token doesn't have the read_agents scope"}`),
			log: []string{"HTTP 403", "forbidden", "needs the read_agents scope"}, maxRequests: 1},
		{name: "403 naming no scope", inject: status(403, `{"message":"Forbidden"}`),
			log: []string{"HTTP 403", "needs the read_agents scope"}, maxRequests: 1},
		{name: "404 organization", inject: status(404, `{"message":"`+buildkitetest.MsgNoOrganization+`"}`),
			log: []string{"HTTP 404", "not found", "No organization found"}, maxRequests: 1},
		{name: "500", inject: status(500, ""), log: []string{"HTTP 500", "server error"}, maxRequests: 3},
		{name: "502 HTML page echoing the token", inject: status(502, "<html><body><h1>502 Bad Gateway</h1>"+testToken+"</body></html>"),
			log: []string{"HTTP 502", "server error", "[REDACTED]"}, maxRequests: 3},
		{name: "503", inject: status(503, `{"message":"Service Unavailable"}`), log: []string{"HTTP 503", "server error"}, maxRequests: 3},
		{name: "502 on page 2 only", inject: fault(buildkitetest.Fault{Match: page(2), Status: 502}),
			log: []string{"HTTP 502"}, maxRequests: 1 + 3 + 3},
		{name: "connection reset", inject: fault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/agents"), CloseConnection: true}),
			// net/http itself retries a GET once on a reused connection that
			// closed before answering: at most 2 x (1 + MaxRetries).
			log: []string{"EOF"}, maxRequests: 6},
		{name: "connection reset on page 3", inject: fault(buildkitetest.Fault{Match: page(3), CloseConnection: true}),
			log: []string{"EOF"}, maxRequests: 1 + 1 + 6},
		{name: "connection refused", inject: func(fe *faultEnv) func() {
			fe.refuse.Store(true)
			fe.transport.CloseIdleConnections()
			return func() { fe.refuse.Store(false) }
		}, log: []string{"connection refused"}, maxRequests: 0},
		{name: "slower than --buildkite.timeout", inject: fault(buildkitetest.Fault{Delay: 20 * time.Second}),
			log: []string{"deadline exceeded"}, maxRequests: 1, timeout: 300 * time.Millisecond},
		{name: "page 3 slower than --buildkite.timeout", inject: fault(buildkitetest.Fault{Match: page(3), Delay: 20 * time.Second}),
			log: []string{"deadline exceeded"}, maxRequests: 3, timeout: 300 * time.Millisecond},
		{name: "malformed JSON", inject: fault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/agents"), Malformed: true}),
			log: []string{"malformed response"}, maxRequests: 1},
		{name: "malformed JSON on page 2", inject: fault(buildkitetest.Fault{Match: page(2), Malformed: true}),
			log: []string{"malformed response"}, maxRequests: 4},
		{name: "truncated body", inject: fault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/agents"), Truncate: true}),
			log: []string{"malformed response", "unexpected EOF"}, maxRequests: 3},
		{name: "an object instead of the array", inject: status(200, `{"agents":[]}`),
			log: []string{"malformed response", "expected a JSON array"}, maxRequests: 1},
		{name: "an agent without id", inject: fault(buildkitetest.Fault{Match: page(2), Status: 200,
			Body: `[{"id":null,"name":"ghost","connection_state":"connected"}]`}),
			log: []string{"malformed response", "without id"}, maxRequests: 4},
		{name: "an agent without connection_state", inject: status(200, `[{"id":"x","priority":"high"}]`),
			log: []string{"malformed response"}, maxRequests: 1},
		// A member of the wrong type fails the listing only for id and
		// connection_state; any other is absent for that agent
		// (TestFaultsTolerated).
		{name: "an id that is not a string", inject: status(200, `[{"id":5,"connection_state":"connected"}]`),
			log: []string{"malformed response"}, maxRequests: 1},
		{name: "a connection_state that is not a string", inject: status(200, `[{"id":"x","connection_state":{"name":"connected"}}]`),
			log: []string{"malformed response"}, maxRequests: 1},
		{name: "a page that is not an array", inject: fault(buildkitetest.Fault{Match: page(2), Status: 200, Body: `"agents"`}),
			log: []string{"malformed response"}, maxRequests: 4},
		// A 429 of the token user's budget: no request until its reset
		// (42 s here; each failing scrape is a minute later).
		{name: "429 of the per-user limit", inject: status(429,
			`{"message":"You have exceeded your API rate limit. Please wait 42 seconds before making more requests.","scope":"rest_user","limit":50,"current":55,"reset":42}`),
			log: []string{"rate limited", "scope=rest_user"}, maxRequests: 1, servesLatest: true},
		{name: "wrong content type", inject: fault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/agents"), ContentType: "text/html; charset=utf-8"}),
			log: []string{"content type", "text/html"}, maxRequests: 1},
		{name: "oversized body", inject: fault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/agents"), OversizeBytes: 17 << 20}),
			log: []string{"malformed response", "exceeds the limit"}, maxRequests: 1},
		{name: "oversized body under a small limit", inject: fault(buildkitetest.Fault{Match: page(2), OversizeBytes: 2 << 20}),
			log: []string{"exceeds the limit"}, maxRequests: 3,
			mod: func(c *client.Config, _ *collector.Config) { c.MaxResponseBytes = 1 << 20 }},
		{name: "page loop: page 1 links to itself", inject: func(fe *faultEnv) func() {
			return fe.fake.InjectFault(buildkitetest.Fault{Match: page(1), LinkHeader: `<` + fe.listURL(fe.url, 1) + `>; rel="next"`})
		}, log: []string{"pagination did not end", "already fetched"}, maxRequests: 1},
		{name: "page loop: 1 -> 2 -> 1 without last", inject: func(fe *faultEnv) func() {
			r1 := fe.fake.InjectFault(buildkitetest.Fault{Match: page(1), LinkHeader: `<` + fe.listURL(fe.url, 2) + `>; rel="next"`})
			r2 := fe.fake.InjectFault(buildkitetest.Fault{Match: page(2), LinkHeader: `<` + fe.listURL(fe.url, 1) + `>; rel="next"`})
			return func() { r1(); r2() }
		}, log: []string{"pagination did not end", "already fetched"}, maxRequests: 2},
		{name: "page cap: last page beyond the limit", inject: func(fe *faultEnv) func() {
			return fe.fake.InjectFault(buildkitetest.Fault{Match: page(1),
				LinkHeader: `<` + fe.listURL(fe.url, 2) + `>; rel="next", <` + fe.listURL(fe.url, 5000) + `>; rel="last"`})
		}, log: []string{"pagination did not end", "5000"}, maxRequests: 1},
		{name: "page cap: next links beyond MaxPages", inject: func(fe *faultEnv) func() {
			// Without last, pages are walked one by one; each links the
			// next as if for ever. The cap is 3 pages.
			var removes []func()
			for p := 1; p <= 4; p++ {
				removes = append(removes, fe.fake.InjectFault(buildkitetest.Fault{
					Match: page(p), LinkHeader: `<` + fe.listURL(fe.url, p+1) + `>; rel="next"`}))
			}
			return func() {
				for _, r := range removes {
					r()
				}
			}
		}, log: []string{"pagination did not end", "more than 3 pages"}, maxRequests: 3,
			mod: func(c *client.Config, _ *collector.Config) { c.MaxPages = 3 }},
		{name: "API ignoring the page parameter", inject: func(fe *faultEnv) func() {
			fe.fake.SetIgnorePage(true)
			return func() { fe.fake.SetIgnorePage(false) }
		}, log: []string{"malformed response", "ignores the page parameter"}, maxRequests: 3},
		{name: "redirect to another host", inject: func(fe *faultEnv) func() {
			to := fe.foreign.URL
			fe.redirectTo.Store(&to)
			return func() { fe.redirectTo.Store(nil) }
		}, log: []string{"unsafe pagination link", "redirect to another host refused"}, maxRequests: 1},
	}
}

// TestFaultMatrix runs every fault through three failing scrapes and a
// recovery.
func TestFaultMatrix(t *testing.T) {
	for _, tc := range faultCases() {
		t.Run(tc.name, func(t *testing.T) {
			fe := newFaultEnv(t, func(c *client.Config, cfg *collector.Config) {
				if tc.timeout > 0 {
					cfg.Timeout = tc.timeout
				}
				if tc.mod != nil {
					tc.mod(c, cfg)
				}
			})
			fe.fleet(fleetSize)
			scrape := func(faulty bool) (map[string]*dto.MetricFamily, time.Duration) {
				ctx := context.Background()
				if faulty && tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
					defer cancel()
				}
				began := time.Now()
				fams := familyMap(t, served{ctx, fe.exporter})
				return fams, time.Since(began)
			}
			fams, _ := scrape(false)
			checkUp(t, fams, fleetSize)
			departedBefore := series(fams, "buildkite_agent_departed_timestamp_seconds")
			collectedBefore := sum(fams, "buildkite_collection_timestamp_seconds")

			clearFault := tc.inject(fe)
			for i := range 3 {
				fe.clock.Advance(time.Minute)
				before := fe.requests()
				fams, took := scrape(true)
				if tc.servesLatest {
					checkUp(t, fams, fleetSize)
					if got := sum(fams, "buildkite_collection_timestamp_seconds"); got != collectedBefore {
						t.Errorf("scrape %d: collection timestamp %v, want the served result's %v", i, got, collectedBefore)
					}
				} else {
					checkDown(t, fams)
				}
				if got := series(fams, "buildkite_agent_departed_timestamp_seconds"); got != departedBefore {
					t.Errorf("scrape %d: departed series %d, want %d (nothing left)", i, got, departedBefore)
				}
				if n := fe.requests() - before; n > tc.maxRequests {
					t.Errorf("scrape %d made %d API requests, want at most %d", i, n, tc.maxRequests)
				}
				if tc.timeout > 0 && took > tc.timeout+time.Second {
					t.Errorf("scrape %d with a --buildkite.timeout of %v took %v", i, tc.timeout, took)
				}
			}
			failMsg, failLevel, recoverMsg := msgFailed, "level=error", msgRecover
			if tc.servesLatest {
				failMsg, failLevel, recoverMsg = msgHold, "level=warn", msgResume
			}
			failed := fe.logs.lines(failMsg)
			if len(failed) != 1 {
				t.Fatalf("three failing scrapes logged %d lines %s, want 1:\n%s", len(failed), failMsg, fe.logs.String())
			}
			for _, want := range tc.log {
				if !strings.Contains(failed[0], want) {
					t.Errorf("the failure log line lacks %q:\n%s", want, failed[0])
				}
			}
			if !strings.Contains(failed[0], failLevel) || !strings.Contains(failed[0], "organization="+faultOrg) {
				t.Errorf("the failure line is not %s naming the organization: %s", failLevel, failed[0])
			}

			clearFault()
			fe.clock.Advance(time.Minute)
			fams, _ = scrape(false)
			checkUp(t, fams, fleetSize)
			fe.clock.Advance(time.Minute)
			fams, _ = scrape(false)
			checkUp(t, fams, fleetSize)
			if n := len(fe.logs.lines(recoverMsg)); n != 1 {
				t.Errorf("recovery logged %d times, want 1:\n%s", n, fe.logs.String())
			}
			if n := len(fe.logs.lines(failMsg)); n != 1 {
				t.Errorf("%d failure lines after recovery, want 1", n)
			}
			if n := fe.foreignHits.Load(); n != 0 {
				t.Errorf("the other host received %d requests (%d with a token)", n, fe.foreignWithAuth.Load())
			}
			for _, r := range fe.fake.Requests() {
				if r.Authorization != "Bearer "+testToken {
					t.Errorf("a request to the API host without the token: %+v", r)
				}
			}
		})
	}
}

// A change of the kind of failure is logged; the same kind again is not.
func TestFaultLogOncePerStateChange(t *testing.T) {
	fe := newFaultEnv(t, nil)
	fe.fleet(3)
	steps := []struct {
		code int
		want string // a new failure line naming this, or "" for none
	}{
		{500, "HTTP 500"}, {500, ""}, {502, ""}, // 500 and 502 are one kind: server errors
		{401, "HTTP 401"}, {401, ""},
		{403, "HTTP 403"},
		{500, "HTTP 500"},
	}
	families(t, fe.exporter)
	for i, s := range steps {
		before := len(fe.logs.lines(msgFailed))
		remove := fe.fake.InjectFault(buildkitetest.Fault{Status: s.code})
		fe.clock.Advance(time.Minute)
		checkDown(t, families(t, fe.exporter))
		remove()
		lines := fe.logs.lines(msgFailed)
		switch {
		case s.want == "" && len(lines) != before:
			t.Errorf("step %d (%d): logged again: %s", i, s.code, lines[len(lines)-1])
		case s.want != "" && (len(lines) != before+1 || !strings.Contains(lines[len(lines)-1], s.want)):
			t.Errorf("step %d (%d): want one new line with %q, have %d new:\n%s", i, s.code, s.want, len(lines)-before, fe.logs.String())
		}
	}
	fe.clock.Advance(time.Minute)
	checkUp(t, families(t, fe.exporter), 3)
	if n := len(fe.logs.lines(msgRecover)); n != 1 {
		t.Errorf("recovered logged %d times", n)
	}
}

// A 429: no retry, no request at all until RateLimit-Reset has passed;
// the scrape that met it and every scrape inside the window answer at once
// with the latest complete result (buildkite_up 1, its own collection
// timestamp); then it recovers. The window comes from the fake's own rate
// limiter.
func TestFault429NoRetryStorm(t *testing.T) {
	fe := newFaultEnv(t, nil)
	fe.fleet(fleetSize)
	fams := families(t, fe.exporter) // 3 requests of the 60 s window
	checkUp(t, fams, fleetSize)
	collected := sum(fams, "buildkite_collection_timestamp_seconds")
	fe.fake.SetRateLimit(4)
	fe.clock.Advance(10 * time.Second)
	before := fe.requests()
	fams = families(t, fe.exporter) // page 1 is the 4th request, page 2 exceeds the limit
	checkUp(t, fams, fleetSize)
	if n := fe.requests() - before; n != 2 {
		t.Errorf("the scrape that hit the limit made %d requests, want 2: page 1, and page 2 answered 429 (no retries)", n)
	}
	if got := sum(fams, "buildkite_api_rate_limit_remaining", "scope", "rest"); got > 0 {
		t.Errorf("rate_limit_remaining = %v, want <= 0", got)
	}
	// Inside the window (it resets 60 s after its first request): nothing
	// is sent, and each scrape answers at once with the served result.
	for i := range 5 {
		fe.clock.Advance(9 * time.Second)
		before := fe.requests()
		began := time.Now()
		fams := families(t, fe.exporter)
		checkUp(t, fams, fleetSize)
		if got := sum(fams, "buildkite_collection_timestamp_seconds"); got != collected {
			t.Errorf("scrape %d inside the 429 window: collection timestamp %v, want %v", i, got, collected)
		}
		if took := time.Since(began); took > 200*time.Millisecond {
			t.Errorf("scrape %d inside the 429 window took %v", i, took)
		}
		if n := fe.requests() - before; n != 0 {
			t.Errorf("scrape %d inside the 429 window sent %d requests", i, n)
		}
	}
	fe.fake.SetRateLimit(0)
	fe.clock.Advance(10 * time.Second) // 64 s after the 429: past the reset
	fams = families(t, fe.exporter)
	checkUp(t, fams, fleetSize)
	if got := sum(fams, "buildkite_collection_timestamp_seconds"); got <= collected {
		t.Errorf("after the reset: collection timestamp %v, want a new collection after %v", got, collected)
	}
	if n := len(fe.logs.lines(msgFailed)); n != 0 {
		t.Errorf("a 429 with a complete result to serve logged %d failure lines", n)
	}
	if held := fe.logs.lines(msgHold); len(held) != 1 || !strings.Contains(held[0], "reset_seconds=") {
		t.Errorf("want one line about the 429 window, have:\n%s", fe.logs.String())
	}
	if n := len(fe.logs.lines(msgResume)); n != 1 {
		t.Errorf("resumption logged %d times", n)
	}
}

// Faults that are not failures: the listing is usable, so buildkite_up
// stays 1 and the exposition stays valid.
func TestFaultsTolerated(t *testing.T) {
	nullEverything := map[string]any{}
	// Every member but id and connection_state, which an agent must have.
	for _, k := range []string{"name", "hostname", "ip_address", "user_agent", "version", "os_id", "arch",
		"queue", "meta_data", "priority", "created_at", "connected_at", "disconnected_at", "lost_at", "stopped_at",
		"last_job_finished_at", "paused", "paused_at", "paused_by", "paused_note", "paused_timeout_in_minutes", "job",
		"creator", "url", "web_url", "graphql_id"} {
		nullEverything[k] = nil
	}
	omitEverything := map[string]any{}
	for k := range nullEverything {
		omitEverything[k] = buildkitetest.Omit
	}
	tests := []struct {
		name  string
		agent buildkitetest.Agent
		check func(t *testing.T, fams map[string]*dto.MetricFamily)
	}{
		{"unknown fields", buildkitetest.Agent{Extra: map[string]any{
			"cluster_id": "c1", "spot": true, "tags": map[string]any{"a": []any{1, "b", nil}}, "future_field": []any{map[string]any{}},
		}}, func(t *testing.T, fams map[string]*dto.MetricFamily) {
			if got := sum(fams, "buildkite_agents", "queue", "q", "connection_state", "connected"); got != 1 {
				t.Errorf("agent with unknown fields not counted: %v", got)
			}
		}},
		{"unknown connection state", buildkitetest.Agent{Extra: map[string]any{"connection_state": "hibernating"}},
			func(t *testing.T, fams map[string]*dto.MetricFamily) {
				if got := sum(fams, "buildkite_agents", "queue", "q", "connection_state", "hibernating"); got != 1 {
					t.Errorf("buildkite_agents{connection_state=hibernating} = %v, want 1", got)
				}
				if got := sum(fams, "buildkite_agents", "queue", "q", "connection_state", "connected"); got != 0 || series(fams, "buildkite_agents") != 3 {
					t.Errorf("connected should be zero-filled beside the new state")
				}
				if got := sum(fams, "buildkite_agents_idle", "queue", "q"); got != 0 {
					t.Errorf("an agent in an unknown state counted idle")
				}
				if got := sum(fams, "buildkite_agent_info", "connection_state", "hibernating"); got != 1 {
					t.Errorf("agent_info lacks the new state")
				}
			}},
		{"unknown job state", buildkitetest.Agent{Job: &buildkitetest.Job{ID: "j", State: "teleporting"}},
			func(t *testing.T, fams map[string]*dto.MetricFamily) {
				if got := sum(fams, "buildkite_agents_busy", "queue", "q"); got != 1 {
					t.Errorf("an agent with a job in an unknown state is busy: %v", got)
				}
			}},
		{"nulls everywhere", buildkitetest.Agent{Extra: nullEverything},
			func(t *testing.T, fams map[string]*dto.MetricFamily) {
				if got := sum(fams, "buildkite_agents", "queue", "default", "connection_state", "connected"); got != 1 {
					t.Errorf("an agent of nulls is counted in queue default: %v", got)
				}
				for _, absent := range []string{"buildkite_agent_priority", "buildkite_agent_created_timestamp_seconds",
					"buildkite_agent_connected_timestamp_seconds", "buildkite_agent_last_job_finished_timestamp_seconds",
					"buildkite_agent_job_started_timestamp_seconds", "buildkite_agent_meta_data"} {
					if series(fams, absent) != 0 {
						t.Errorf("%s from null fields", absent)
					}
				}
			}},
		{"fields missing", buildkitetest.Agent{Extra: omitEverything},
			func(t *testing.T, fams map[string]*dto.MetricFamily) {
				if got := series(fams, "buildkite_agent_info"); got != 1 {
					t.Errorf("agent_info series: %d", got)
				}
			}},
		{"empty strings", buildkitetest.Agent{Extra: map[string]any{"queue": "", "meta_data": []any{"", "queue=", "=", "k"}, "created_at": ""}},
			func(t *testing.T, fams map[string]*dto.MetricFamily) {
				if got := sum(fams, "buildkite_agents", "queue", "default"); got != 1 {
					t.Errorf("empty queue and queue= tag: not in default: %v", got)
				}
			}},
		{"timestamps out of range", buildkitetest.Agent{Extra: map[string]any{
			// Older than a time.Duration reaches (292 years), year -1 and
			// year 10000 once in UTC, and a job from the far future.
			"created_at": "1601-01-01T00:00:00Z", "connected_at": "0000-01-01T00:00:00+01:00",
			"last_job_finished_at": "9999-12-31T23:59:59-01:00", "job": map[string]any{"id": "j", "state": "running", "started_at": "2150-01-01T00:00:00Z"},
		}}, func(t *testing.T, fams map[string]*dto.MetricFamily) {
			for _, absent := range []string{"buildkite_agent_created_timestamp_seconds", "buildkite_agent_connected_timestamp_seconds",
				"buildkite_agent_last_job_finished_timestamp_seconds", "buildkite_agent_last_job_finished_age_seconds",
				"buildkite_agent_job_started_timestamp_seconds"} {
				if series(fams, absent) != 0 {
					t.Errorf("%s from a timestamp out of range: %v", absent, sum(fams, absent))
				}
			}
			if got := sum(fams, "buildkite_agents_busy", "queue", "q"); got != 1 {
				t.Errorf("the agent's job still counts: busy = %v", got)
			}
		}},
		{"timestamps at the edges of the range", buildkitetest.Agent{Extra: map[string]any{
			"created_at": "2000-01-01T00:00:00Z", "last_job_finished_at": "2099-12-31T23:59:59Z",
		}}, func(t *testing.T, fams map[string]*dto.MetricFamily) {
			if got := sum(fams, "buildkite_agent_created_timestamp_seconds"); got != 946684800 {
				t.Errorf("created 2000-01-01 = %v, want kept", got)
			}
			if got := sum(fams, "buildkite_agent_last_job_finished_age_seconds"); got > -2e9 || got < -3e9 {
				t.Errorf("age of a last job in 2099 = %v, want kept (negative, about 73 years)", got)
			}
		}},
		{"label values longer than 1024 bytes", buildkitetest.Agent{Extra: map[string]any{
			"name": strings.Repeat("n", 5000), "hostname": "h" + strings.Repeat("é", 3000),
			"meta_data": []any{"size=" + strings.Repeat("x", 5000)}, "version": strings.Repeat("v", 2000),
		}}, func(t *testing.T, fams map[string]*dto.MetricFamily) {
			for _, mf := range fams {
				for _, m := range mf.GetMetric() {
					for _, lp := range m.GetLabel() {
						if len(lp.GetValue()) > 1024 {
							t.Errorf("%s: label %s is %d bytes, want at most 1024", mf.GetName(), lp.GetName(), len(lp.GetValue()))
						}
					}
				}
			}
			if got := sum(fams, "buildkite_agent_info", "name", strings.Repeat("n", 1024)); got != 1 {
				t.Errorf("the name cut at 1024 bytes: %v", got)
			}
			if got := sum(fams, "buildkite_agent_info", "hostname", "h"+strings.Repeat("é", 511)); got != 1 {
				t.Errorf("the hostname cut at the UTF-8 boundary before 1024 bytes (1023): %v", got)
			}
		}},
		{"priority an object, a timestamp not RFC 3339, job a string", buildkitetest.Agent{Extra: map[string]any{
			"priority": map[string]any{"number": 1}, "connected_at": "2026-01-02 03:04:05 UTC", "job": "j-1",
		}}, func(t *testing.T, fams map[string]*dto.MetricFamily) {
			for _, absent := range []string{"buildkite_agent_priority", "buildkite_agent_connected_timestamp_seconds"} {
				if series(fams, absent) != 0 {
					t.Errorf("%s from a member of the wrong type", absent)
				}
			}
			if got := sum(fams, "buildkite_agents_idle", "queue", "q"); got != 1 {
				t.Errorf("the agent counts, idle (its job absent): %v", got)
			}
			for _, field := range []string{"priority", "connected_at", "job"} {
				if got := sum(fams, "buildkite_exporter_agent_field_errors_total", "field", field); got != 1 {
					t.Errorf("field errors of %s: %v, want 1", field, got)
				}
			}
		}},
		{"meta_data with nulls", buildkitetest.Agent{Extra: map[string]any{"queue": buildkitetest.Omit, "meta_data": []any{nil, "queue=q", nil}}},
			func(t *testing.T, fams map[string]*dto.MetricFamily) {
				if got := sum(fams, "buildkite_agents", "queue", "q"); got != 1 {
					t.Errorf("queue from meta_data with nulls around it: %v", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fe := newFaultEnv(t, nil)
			a := tt.agent
			a.ID, a.ConnectionState, a.CreatedAt = "tolerated", "connected", epoch.Add(-time.Hour)
			if a.Queue == "" {
				a.Queue = "q"
			}
			fe.fake.PutAgent(faultOrg, a)
			fams := families(t, fe.exporter)
			if got := sum(fams, "buildkite_up"); got != 1 {
				t.Fatalf("buildkite_up = %v, want 1; logs:\n%s", got, fe.logs.String())
			}
			tt.check(t, fams)
			lint(t, fe.exporter)
			if n := len(fe.logs.lines("level=error")); n != 0 {
				t.Errorf("errors logged:\n%s", fe.logs.String())
			}
		})
	}
}

// Invalid UTF-8 in every string the API sends, tags included, on the wire
// as raw bytes: label values come out valid and the scrape gathers.
func TestFaultInvalidUTF8(t *testing.T) {
	fe := newFaultEnv(t, func(_ *client.Config, c *collector.Config) { c.Tags = []string{"size", "t\xffeam", "queue"} })
	body := "[" +
		`{"id":"u1\xff","name":"n\xfe\xff","connection_state":"conn\xc3ected","hostname":"h\xed\xa0\x80","ip_address":"1\xff",` +
		`"user_agent":"buildkite-agent/3 (li\xffnux; am\xfed64)","version":"3.\xff","queue":"q\xff","os_id":null,"arch":null,` +
		`"meta_data":["queue=b\xffuild","size=\xff","t\xffeam=\xfe","\xff","k=\xc0\xaf","size=\xfe"],"created_at":"2026-11-01T11:00:00.000Z"},` +
		`{"id":"u1\xfe","name":"duplicate after repair","connection_state":"connected","queue":"q"},` +
		`{"id":"u2","name":"plain","connection_state":"connected","meta_data":["queue=\xff\xfe","size=\ud800"]}` +
		"]"
	body = regexp.MustCompile(`\\x[0-9a-f]{2}`).ReplaceAllStringFunc(body, func(h string) string {
		b, _ := strconv.ParseUint(h[2:], 16, 8)
		return string([]byte{byte(b)})
	})
	if utf8.ValidString(body) {
		t.Fatal("the body should hold invalid UTF-8")
	}
	remove := fe.fake.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/agents"), Status: 200, Body: body})
	fams := families(t, fe.exporter) // fails on any invalid label value or duplicate series
	if got := sum(fams, "buildkite_up"); got != 1 {
		t.Fatalf("buildkite_up = %v; logs:\n%s", got, fe.logs.String())
	}
	if got := sum(fams, "buildkite_agents"); got < 2 {
		t.Errorf("buildkite_agents = %v, want the agents counted", got)
	}
	lint(t, fe.exporter)
	// The agents leave: their departed series carry repaired labels too.
	remove()
	fe.clock.Advance(time.Minute)
	fams = families(t, fe.exporter)
	if got := series(fams, "buildkite_agent_departed_timestamp_seconds"); got < 2 {
		t.Errorf("departed series: %d", got)
	}
}

// Pages shift while the client reads them (agents join and leave between
// pages): agents repeated at a page boundary count once, and an agent a
// shift hid is not taken for a departure.
func TestFaultShiftingPages(t *testing.T) {
	fe := newFaultEnv(t, func(c *client.Config, _ *collector.Config) { c.PageConcurrency = 1 })
	fe.fleet(fleetSize)
	checkUp(t, families(t, fe.exporter), fleetSize)

	// Duplicates: before page 2 is built, an agent older than all joins
	// at the front; every later page starts with the last agent of the
	// page before.
	var once sync.Once
	fe.fake.OnListPage(func(org string, page int) {
		if page == 2 {
			once.Do(func() {
				fe.fake.PutAgent(faultOrg, buildkitetest.Agent{ID: "agent-old", Name: "old", ConnectionState: "connected",
					Queue: "build", MetaData: []string{"size=large"}, CreatedAt: epoch.Add(-48 * time.Hour)})
			})
		}
	})
	fe.clock.Advance(time.Minute)
	fams := families(t, fe.exporter)
	// agent-old was not on page 1 when it was read; the shift repeats the
	// last agent of pages 1 and 2 and spills the newest onto page 4.
	checkUp(t, fams, fleetSize)
	fe.clock.Advance(time.Minute)
	checkUp(t, families(t, fe.exporter), fleetSize+1)

	// Skips: after page 1 is read, an agent on it leaves; page 2 then
	// starts one later and the agent that moved onto page 1 is missed.
	var once2 sync.Once
	fe.fake.OnListPage(func(org string, page int) {
		if page == 2 {
			once2.Do(func() { fe.fake.SetConnectionState(faultOrg, "agent-0000", "stopped") })
		}
	})
	fe.clock.Advance(time.Minute)
	fams = families(t, fe.exporter)
	if got := sum(fams, "buildkite_up"); got != 1 {
		t.Fatalf("buildkite_up = %v", got)
	}
	// agent-0000 left (looked up: stopped); the agent the shift hid (the
	// first of page 2) is not a departure: Get shows it connected.
	if got := sum(fams, "buildkite_agent_departures_total"); got != 0 {
		t.Errorf("departures counted while agent-0000 was still on page 1 when read: %v", got)
	}
	fe.fake.OnListPage(nil)
	fe.clock.Advance(time.Minute)
	fams = families(t, fe.exporter)
	if got := sum(fams, "buildkite_agent_departures_total"); got != 1 {
		t.Errorf("departures = %v, want 1 (agent-0000, stopped)", got)
	}
	if got := sum(fams, "buildkite_agent_departures_total", "connection_state", "stopped", "queue", "deploy"); got != 1 {
		t.Errorf("agent-0000 should depart from deploy as stopped")
	}
	if got := series(fams, "buildkite_agent_info"); got != fleetSize {
		t.Errorf("%d agents listed, want %d", got, fleetSize)
	}
}

func lint(t *testing.T, e *collector.Exporter) {
	t.Helper()
	problems, err := testutil.GatherAndLint(served{context.Background(), e})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
