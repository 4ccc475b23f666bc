package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

const (
	fakeToken = "bkua_fake0123456789abcdef0123456789abcdef"
	readOnly  = "bkua_readonly0123456789abcdef0123456789ab"
	writeOnly = "bkua_writeonly0123456789abcdef0123456789a"
	otherOrgs = "bkua_otherorgs0123456789abcdef0123456789a"
	org       = "acme"
)

var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a settable clock shared by the fake and the client.
type fakeClock struct{ t atomic.Pointer[time.Time] }

func newFakeClock() *fakeClock       { c := &fakeClock{}; c.set(epoch); return c }
func (c *fakeClock) now() time.Time  { return *c.t.Load() }
func (c *fakeClock) set(t time.Time) { c.t.Store(&t) }

type env struct {
	srv   *buildkitetest.Server
	c     *client.Client
	clock *fakeClock
	ctx   context.Context
	// reported sums the Requests of the results e.list and e.get got.
	reported atomic.Int64

	mu       sync.Mutex
	observed []int
}

func newEnv(t *testing.T, mod ...func(*client.Config)) *env {
	t.Helper()
	e := &env{srv: buildkitetest.NewServer(), clock: newFakeClock()}
	t.Cleanup(e.srv.Close)
	e.srv.SetClock(e.clock.now)
	e.srv.AddToken(fakeToken)
	e.srv.AddToken(readOnly, buildkitetest.ScopeReadAgents)
	e.srv.AddToken(writeOnly, buildkitetest.ScopeWriteAgents)
	e.srv.AddTokenForOrgs(otherOrgs, []string{"elsewhere"})
	e.srv.AddOrganization(org)
	e.srv.AddOrganization("elsewhere")
	cfg := client.Config{
		BaseURL:      e.srv.URL,
		Token:        client.StaticToken(fakeToken),
		RetryBackoff: time.Millisecond,
		Now:          e.clock.now,
		Observer: client.ObserverFunc(func(_ string, code int) {
			e.mu.Lock()
			e.observed = append(e.observed, code)
			e.mu.Unlock()
		}),
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	e.ctx = context.Background()
	return e
}

// list lists org with e's client, keeping count of the requests reported.
func (e *env) list(org string, opts client.ListOptions) (*client.AgentList, error) {
	list, err := e.c.ListAgents(e.ctx, org, opts)
	e.reported.Add(int64(list.Requests))
	return list, err
}

// get gets an agent with e's client, keeping count of the requests reported.
func (e *env) get(org, id string) (*client.Agent, error) {
	a, n, err := e.c.GetAgent(e.ctx, org, id)
	e.reported.Add(int64(n))
	return a, err
}

// withToken returns a client of e's fake using another token.
func (e *env) withToken(t *testing.T, tok string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{BaseURL: e.srv.URL, Token: client.StaticToken(tok), RetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkRequests asserts the fake saw n requests, all reported in results
// and heard by the Observer, all carrying the token.
func (e *env) checkRequests(t *testing.T, n int) {
	t.Helper()
	reqs := e.srv.Requests()
	e.mu.Lock()
	observed := len(e.observed)
	e.mu.Unlock()
	if len(reqs) != n || e.reported.Load() != int64(n) || observed != n {
		t.Fatalf("fake saw %d requests, reported %d, observer %d; want %d", len(reqs), e.reported.Load(), observed, n)
	}
	for _, r := range reqs {
		if r.Authorization != "Bearer "+fakeToken {
			t.Fatalf("request %s %s carried %q", r.Method, r.Path, r.Authorization)
		}
	}
}

func putAgents(srv *buildkitetest.Server, n int, prefix string) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%05d", prefix, i)
		srv.PutAgent(org, buildkitetest.Agent{
			ID: ids[i], Name: ids[i], Hostname: "host", Version: "3.87.1",
			CreatedAt: epoch.Add(-time.Hour).Add(time.Duration(i) * time.Second),
			MetaData:  []string{"queue=default"},
		})
	}
	return ids
}

func TestFakeListFilters(t *testing.T) {
	e := newEnv(t)
	job := &buildkitetest.Job{ID: "job-1", State: "running", StartedAt: ptr(epoch.Add(-time.Minute))}
	for _, a := range []buildkitetest.Agent{
		{ID: "a1", Name: "ci-1", Hostname: "box-1", Version: "3.1.0", ClusterQueueID: "q-1", Job: job, Priority: ptr(3), MetaData: []string{"queue=build", "docker"}},
		{ID: "a2", Name: "ci-2", Hostname: "box-1", Version: "3.2.0", ClusterQueueID: "q-2", ConnectionState: buildkitetest.StateStopping},
		{ID: "a3", Name: "ci-3", Hostname: "box-2", Version: "3.1.0", ClusterQueueID: "q-1"},
		{ID: "a4", Name: "ci-4", Hostname: "box-2", Version: "3.1.0", ConnectionState: buildkitetest.StateDisconnected},
		{ID: "a5", Name: "ci-5", Hostname: "box-3", Version: "3.1.0", ConnectionState: buildkitetest.StateLost},
	} {
		a.CreatedAt = epoch.Add(-time.Hour)
		e.srv.PutAgent(org, a)
	}
	for _, tc := range []struct {
		opts client.ListOptions
		want string
	}{
		{client.ListOptions{}, "a1,a2,a3"},
		{client.ListOptions{Name: "ci-3"}, "a3"},
		{client.ListOptions{Name: "ci-4"}, ""},
		{client.ListOptions{Hostname: "box-1"}, "a1,a2"},
		{client.ListOptions{Version: "3.1.0"}, "a1,a3"},
		{client.ListOptions{ClusterQueueID: "q-1"}, "a1,a3"},
		{client.ListOptions{Hostname: "box-2", Version: "3.1.0"}, "a3"},
	} {
		list, err := e.list(org, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range list.Agents {
			ids = append(ids, a.ID)
		}
		if got := strings.Join(ids, ","); got != tc.want || list.Pages != 1 || list.Duplicates != 0 {
			t.Errorf("%+v: got %q (pages %d), want %q", tc.opts, got, list.Pages, tc.want)
		}
		if tc.opts == (client.ListOptions{}) {
			a := list.Agents[0]
			if a.Job == nil || a.Job.ID != "job-1" || a.Job.State != "running" || !a.Job.StartedAt.Equal(epoch.Add(-time.Minute)) ||
				a.Priority == nil || *a.Priority != 3 || strings.Join(a.MetaData, ",") != "queue=build,docker" ||
				a.ConnectionState != "connected" || !a.CreatedAt.Equal(epoch.Add(-time.Hour)) || a.Hostname != "box-1" {
				t.Errorf("agent = %+v", a)
			}
			if list.Agents[1].ConnectionState != "stopping" || list.Agents[1].Job != nil || list.Agents[1].Priority != nil {
				t.Errorf("agent = %+v", list.Agents[1])
			}
		}
	}
	reqs := e.srv.Requests()
	if q := reqs[len(reqs)-1].RawQuery; !strings.Contains(q, "hostname=box-2") || !strings.Contains(q, "per_page=100") {
		t.Errorf("query = %q", q)
	}
	e.checkRequests(t, 7)
	if rl, ok := e.c.RateLimit(org); !ok || rl.Limit != buildkitetest.UnlimitedRateLimit || !rl.ObservedAt.Equal(epoch) {
		t.Errorf("RateLimit = %+v, %v", rl, ok)
	}
}

func ptr[T any](v T) *T { return &v }

func TestFakeGetAnyState(t *testing.T) {
	e := newEnv(t)
	states := []string{
		buildkitetest.StateNeverConnected, buildkitetest.StateConnected, buildkitetest.StateDisconnected,
		buildkitetest.StateStopping, buildkitetest.StateStopped, buildkitetest.StateLost,
	}
	for _, st := range states {
		e.srv.PutAgent(org, buildkitetest.Agent{ID: "id-" + st, Name: st, UserAgent: "buildkite-agent/3.1.0 (darwin; arm64)"})
		e.srv.SetConnectionState(org, "id-"+st, st)
	}
	e.srv.PutAgent(org, buildkitetest.Agent{
		ID: "odd", ConnectionState: "hibernating", OSID: "linux", Arch: "amd64", Queue: "gpu",
		Paused: true, PausedAt: ptr(epoch), PausedNote: "maintenance",
		Extra: map[string]any{"brand_new_field": map[string]any{"x": []int{1}}},
	})
	for _, st := range append(states, "hibernating") {
		id := "id-" + st
		if st == "hibernating" {
			id = "odd"
		}
		a, err := e.get(org, id)
		if err != nil {
			t.Fatalf("%s: %v", st, err)
		}
		if a.ID != id || a.ConnectionState != st {
			t.Errorf("%s: got %+v", st, a)
		}
		if st == buildkitetest.StateLost && !a.LostAt.Equal(epoch) {
			t.Errorf("lost_at = %v", a.LostAt)
		}
		if id == "odd" {
			if os, arch := a.Platform(); os != "linux" || arch != "amd64" || a.Queue != "gpu" || !a.Paused || a.PausedNote != "maintenance" || !a.PausedAt.Equal(epoch) {
				t.Errorf("odd: %+v", a)
			}
		} else if os, arch := a.Platform(); os != "darwin" || arch != "arm64" {
			t.Errorf("platform %s/%s", os, arch)
		}
	}
	_, err := e.get(org, "nope")
	var ae *client.APIError
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &ae) || ae.Message != buildkitetest.MsgNoAgent {
		t.Fatalf("err = %v", err)
	}
	e.checkRequests(t, len(states)+2)
}

func TestFakeActions(t *testing.T) {
	e := newEnv(t)
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "busy", Job: &buildkitetest.Job{ID: "j", State: "running"}})
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "idle"})
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "gone", ConnectionState: buildkitetest.StateDisconnected})
	ro := e.withToken(t, readOnly)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		do      func() error
		want    error
		status  int
		message string
		scope   string
	}{
		{"pause", func() error { return e.c.PauseAgent(ctx, org, "idle", "maintenance", 30) }, nil, 0, "", ""},
		{"pause again", func() error { return e.c.PauseAgent(ctx, org, "idle", "", 0) }, client.ErrRejected, 422, buildkitetest.MsgAlreadyPaused, ""},
		{"pause disconnected", func() error { return e.c.PauseAgent(ctx, org, "gone", "", 0) }, client.ErrRejected, 422, buildkitetest.MsgOnlyConnectedPause, ""},
		{"pause unknown", func() error { return e.c.PauseAgent(ctx, org, "nope", "", 0) }, client.ErrNotFound, 404, buildkitetest.MsgNoAgent, ""},
		{"resume", func() error { return e.c.ResumeAgent(ctx, org, "idle") }, nil, 0, "", ""},
		{"resume not paused", func() error { return e.c.ResumeAgent(ctx, org, "idle") }, client.ErrRejected, 422, buildkitetest.MsgNotPaused, ""},
		{"resume unknown", func() error { return e.c.ResumeAgent(ctx, org, "nope") }, client.ErrNotFound, 404, buildkitetest.MsgNoAgent, ""},
		{"stop read-only", func() error { return ro.StopAgent(ctx, org, "busy", true) }, client.ErrForbidden, 403, "", "write_agents"},
		{"pause read-only", func() error { return ro.PauseAgent(ctx, org, "busy", "", 0) }, client.ErrForbidden, 403, "", "write_agents"},
		{"resume read-only", func() error { return ro.ResumeAgent(ctx, org, "busy") }, client.ErrForbidden, 403, "", "write_agents"},
		{"stop forced", func() error { return e.c.StopAgent(ctx, org, "busy", true) }, nil, 0, "", ""},
		{"stop disconnected", func() error { return e.c.StopAgent(ctx, org, "gone", false) }, client.ErrRejected, 400, buildkitetest.MsgCanOnlyStop, ""},
		{"stop in unknown org", func() error { return e.c.StopAgent(ctx, "no-such-org", "busy", false) }, client.ErrNotFound, 404, buildkitetest.MsgNoOrganization, ""},
	} {
		err := tc.do()
		if tc.want == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		var ae *client.APIError
		if !errors.Is(err, tc.want) || !errors.As(err, &ae) || ae.StatusCode != tc.status ||
			!strings.Contains(ae.Message, tc.message) || ae.Scope != tc.scope || ae.Method != http.MethodPut {
			t.Errorf("%s: err = %v (%+v)", tc.name, err, ae)
		}
		if tc.scope != "" && !strings.Contains(err.Error(), tc.scope) {
			t.Errorf("%s: error does not name the scope: %v", tc.name, err)
		}
	}
	if a, _ := e.srv.Agent(org, "busy"); a.ConnectionState != buildkitetest.StateStopping && a.ConnectionState != buildkitetest.StateStopped {
		t.Errorf("busy agent after stop: %s", a.ConnectionState)
	}
}

func TestFakeAuth(t *testing.T) {
	e := newEnv(t)
	putAgents(e.srv, 3, "a")
	ctx := context.Background()
	list := func(c *client.Client, o string) error {
		_, err := c.ListAgents(ctx, o, client.ListOptions{})
		return err
	}
	get := func(c *client.Client, o string) error { _, _, err := c.GetAgent(ctx, o, "a-00000"); return err }
	for _, tc := range []struct {
		name   string
		tok    string
		org    string
		call   func(*client.Client, string) error
		want   error
		scope  string
		status int
	}{
		{"list bad token", "bkua_wrong", org, list, client.ErrUnauthorized, "", 401},
		{"get bad token", "bkua_wrong", org, get, client.ErrUnauthorized, "", 401},
		{"list without read scope", writeOnly, org, list, client.ErrForbidden, "read_agents", 403},
		{"get without read scope", writeOnly, org, get, client.ErrForbidden, "read_agents", 403},
		{"list unknown org", fakeToken, "no-such-org", list, client.ErrNotFound, "", 404},
		{"get unknown org", fakeToken, "no-such-org", get, client.ErrNotFound, "", 404},
		{"org the token lacks", otherOrgs, org, list, client.ErrNotFound, "", 404},
	} {
		c := e.withToken(t, tc.tok)
		err := tc.call(c, tc.org)
		var ae *client.APIError
		if !errors.Is(err, tc.want) || !errors.As(err, &ae) || ae.Scope != tc.scope || ae.StatusCode != tc.status {
			t.Errorf("%s: err = %v", tc.name, err)
		}
		if tc.scope != "" && !strings.Contains(err.Error(), tc.scope) {
			t.Errorf("%s: error does not name the scope: %v", tc.name, err)
		}
		if strings.Contains(err.Error(), tc.tok) {
			t.Errorf("%s: error contains the token", tc.name)
		}
	}
	if err := list(e.withToken(t, otherOrgs), "elsewhere"); err != nil {
		t.Fatal(err)
	}
}

func TestFakePagination(t *testing.T) {
	for _, n := range []int{0, 1, 100, 101, 2537} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			e := newEnv(t, func(cfg *client.Config) { cfg.PageConcurrency = 4 })
			ids := putAgents(e.srv, n, "agent")
			var mu sync.Mutex
			pagesSeen := map[int]int{}
			e.srv.OnListPage(func(_ string, page int) {
				mu.Lock()
				pagesSeen[page]++
				mu.Unlock()
			})
			list, err := e.list(org, client.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wantPages := max(1, (n+99)/100)
			e.checkRequests(t, wantPages)
			if list.Pages != wantPages || len(list.Agents) != n || list.Duplicates != 0 || len(pagesSeen) != wantPages {
				t.Fatalf("pages %d, agents %d, dups %d, pages seen %v", list.Pages, len(list.Agents), list.Duplicates, pagesSeen)
			}
			for i, a := range list.Agents {
				if a.ID != ids[i] {
					t.Fatalf("agent %d = %s, want %s", i, a.ID, ids[i])
				}
			}
		})
	}
}

// TestFakeNextOnly strips rel="last" from every page: the client must walk
// the next links one by one.
func TestFakeNextOnly(t *testing.T) {
	e := newEnv(t)
	ids := putAgents(e.srv, 450, "agent")
	for p := 1; p <= 5; p++ {
		link := "-"
		if p < 5 {
			link = fmt.Sprintf(`<%s/organizations/%s/agents?page=%d&per_page=100>; rel="next"`, e.srv.URL, org, p+1)
		}
		e.srv.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPage(p), LinkHeader: link})
	}
	list, err := e.list(org, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Agents) != len(ids) || list.Pages != 5 {
		t.Fatalf("agents %d, pages %d", len(list.Agents), list.Pages)
	}
	e.checkRequests(t, 5)
}

// TestFakeShiftingPages inserts agents while the client pages: an old agent
// at the front shifts every later page by one (repeating an agent at each
// boundary), and a new one at the end spills onto a page past the last.
func TestFakeShiftingPages(t *testing.T) {
	e := newEnv(t)
	ids := putAgents(e.srv, 300, "agent")
	var once sync.Once
	e.srv.OnListPage(func(_ string, page int) {
		if page < 2 {
			return
		}
		once.Do(func() {
			e.srv.PutAgent(org, buildkitetest.Agent{ID: "oldest", CreatedAt: epoch.Add(-48 * time.Hour)})
			e.srv.PutAgent(org, buildkitetest.Agent{ID: "newest", CreatedAt: epoch})
		})
	})
	list, err := e.list(org, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range list.Agents {
		if seen[a.ID] {
			t.Fatalf("duplicate %s", a.ID)
		}
		seen[a.ID] = true
	}
	// "oldest" landed on page 1 after it was read: no client can see it in
	// this listing. Every agent present throughout must be there.
	for _, id := range append(ids, "newest") {
		if !seen[id] {
			t.Errorf("missing %s", id)
		}
	}
	if list.Duplicates == 0 || list.Pages != 4 {
		t.Errorf("duplicates %d, pages %d", list.Duplicates, list.Pages)
	}
	e.checkRequests(t, 4)
}

func TestFake429(t *testing.T) {
	e := newEnv(t)
	putAgents(e.srv, 1, "a")
	e.srv.SetRateLimit(2)
	for i := 0; i < 2; i++ {
		if _, err := e.get(org, "a-00000"); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.set(epoch.Add(10 * time.Second))
	_, err := e.list(org, client.ListOptions{})
	var rle *client.RateLimitError
	if !errors.As(err, &rle) || !rle.Sent || !errors.Is(err, client.ErrRateLimited) || !rle.ResetAt.Equal(epoch.Add(60*time.Second)) {
		t.Fatalf("err = %v (%+v)", err, rle)
	}
	if rl, _ := e.c.RateLimit(org); rl.Limit != 2 || rl.Remaining != -1 || rl.Reset != 50 {
		t.Fatalf("RateLimit = %+v", rl)
	}
	e.checkRequests(t, 3)

	// An immediate second call (of any kind) makes no request.
	_, err = e.list(org, client.ListOptions{})
	if !errors.As(err, &rle) || rle.Sent {
		t.Fatalf("err = %v", err)
	}
	if err := e.c.StopAgent(e.ctx, org, "a-00000", false); !errors.As(err, &rle) || rle.Sent {
		t.Fatalf("err = %v", err)
	}
	e.checkRequests(t, 3)
	if got := e.c.BlockedUntil(org); !got.Equal(epoch.Add(60 * time.Second)) {
		t.Fatalf("BlockedUntil = %v", got)
	}
	// Another organization is not blocked.
	if _, err := e.list("elsewhere", client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	// Once the window has passed, requests go out again.
	e.clock.set(epoch.Add(61 * time.Second))
	if !e.c.BlockedUntil(org).IsZero() {
		t.Fatal("still blocked")
	}
	if _, err := e.list(org, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestFakeDeadline(t *testing.T) {
	e := newEnv(t)
	putAgents(e.srv, 250, "a")
	for _, match := range []func(*http.Request) bool{buildkitetest.MatchPage(1), buildkitetest.MatchPage(3)} {
		remove := e.srv.InjectFault(buildkitetest.Fault{Match: match, Delay: 30 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, err := e.c.ListAgents(ctx, org, client.ListOptions{})
		cancel()
		remove()
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
			t.Fatalf("err = %v after %v", err, time.Since(start))
		}
	}
}

func TestFakeServerErrorsRetried(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fault    buildkitetest.Fault
		retries  int
		wantReqs int
		want     error
	}{
		{"502 always", buildkitetest.Fault{Status: 502}, 0, 3, client.ErrServer},
		{"500 always, 1 retry", buildkitetest.Fault{Status: 500}, 1, 2, client.ErrServer},
		{"503 once", buildkitetest.Fault{Status: 503, Times: 1}, 0, 2, nil},
		{"connection closed once", buildkitetest.Fault{CloseConnection: true, Times: 1}, 0, 2, nil},
		{"connection closed always", buildkitetest.Fault{CloseConnection: true}, 0, 3, nil},
		{"truncated once", buildkitetest.Fault{Truncate: true, Times: 1}, 0, 2, nil},
		{"truncated always", buildkitetest.Fault{Truncate: true}, 0, 3, client.ErrMalformed},
		{"malformed", buildkitetest.Fault{Malformed: true}, 0, 1, client.ErrMalformed},
		{"wrong content type", buildkitetest.Fault{ContentType: "text/html; charset=utf-8"}, 0, 1, client.ErrMalformed},
		{"oversize", buildkitetest.Fault{OversizeBytes: 17 << 20}, 0, 1, client.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(cfg *client.Config) { cfg.MaxRetries = tc.retries })
			putAgents(e.srv, 5, "a")
			tc.fault.Match = buildkitetest.MatchPage(1)
			e.srv.InjectFault(tc.fault)
			list, err := e.list(org, client.ListOptions{})
			if tc.name == "connection closed always" {
				if err == nil || errors.Is(err, client.ErrServer) {
					t.Fatalf("err = %v", err)
				}
			} else if tc.want == nil {
				if err != nil || len(list.Agents) != 5 {
					t.Fatal(list, err)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v", err)
			}
			if err != nil && strings.Contains(err.Error(), fakeToken) {
				t.Fatalf("error contains the token: %v", err)
			}
			if tc.name == "wrong content type" && !strings.Contains(err.Error(), "text/html") {
				t.Fatalf("error does not name the content type: %v", err)
			}
			e.checkRequests(t, tc.wantReqs)
		})
	}
}

// TestFakeSmallResponseLimit checks the limit on an ordinary page.
func TestFakeSmallResponseLimit(t *testing.T) {
	e := newEnv(t, func(cfg *client.Config) { cfg.MaxResponseBytes = 4 << 10 })
	putAgents(e.srv, 100, "a")
	if _, err := e.list(org, client.ListOptions{}); !errors.Is(err, client.ErrMalformed) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("err = %v", err)
	}
	e.checkRequests(t, 1)
}

// TestFakeTLS runs a listing over TLS with the fake's trusted client.
func TestFakeTLS(t *testing.T) {
	srv := buildkitetest.NewTLSServer()
	defer srv.Close()
	srv.AddToken(fakeToken)
	srv.AddOrganization(org)
	srv.PutAgent(org, buildkitetest.Agent{ID: "x"})
	c, err := client.New(client.Config{BaseURL: srv.URL, Token: client.StaticToken(fakeToken), HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.ListAgents(context.Background(), org, client.ListOptions{})
	if err != nil || len(list.Agents) != 1 {
		t.Fatal(list, err)
	}
}
