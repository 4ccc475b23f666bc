package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// TestFakeTolerantFields: members of an unexpected type or format are
// absent for their agent, counted by name, and the listing succeeds with
// every agent.
func TestFakeTolerantFields(t *testing.T) {
	e := newEnv(t)
	putAgents(e.srv, 3, "a")
	odd := map[string]any{
		"priority":   map[string]any{"number": 1},
		"created_at": "2026-01-02 03:04:05 UTC",
		"meta_data":  []any{"queue=x", 7},
		"paused":     "yes",
		"name":       []any{"n"},
		"web_url":    "https://buildkite.com/organizations/acme/clusters/c1",
	}
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "odd-1", ConnectionState: buildkitetest.StateConnected, Extra: odd})
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "odd-2", ConnectionState: buildkitetest.StateConnected, Extra: odd,
		Job: &buildkitetest.Job{ID: "j", State: "running"}})
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "odd-3", ConnectionState: buildkitetest.StateConnected,
		Extra: map[string]any{"job": "running", "priority": nil, "queue": nil}})
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "odd-4", ConnectionState: buildkitetest.StateConnected,
		Job: &buildkitetest.Job{ID: "j4", State: "running"}, Extra: map[string]any{"job": map[string]any{"id": "j4", "started_at": "now", "state": 3}}})

	list, err := e.list(org, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Agents) != 7 {
		t.Fatalf("%d agents, want 7", len(list.Agents))
	}
	want := map[string]int{"priority": 2, "created_at": 2, "meta_data": 2, "paused": 2, "name": 2, "web_url": 2,
		"job": 1, "job.started_at": 1, "job.state": 1}
	if len(list.FieldErrors) != len(want) {
		t.Errorf("field errors %v, want %v", list.FieldErrors, want)
	}
	for k, n := range want {
		if list.FieldErrors[k] != n {
			t.Errorf("field errors %v, want %v", list.FieldErrors, want)
			break
		}
	}
	for _, a := range list.Agents {
		switch a.ID {
		case "odd-1", "odd-2":
			if a.Priority != nil || !a.CreatedAt.IsZero() || a.MetaData != nil || a.Paused || a.Name != "" || a.ClusterID != "" {
				t.Errorf("odd members kept: %+v", a)
			}
			if a.ID == "odd-2" && (a.Job == nil || a.Job.ID != "j") {
				t.Errorf("a good job lost beside odd members: %+v", a.Job)
			}
		case "odd-3":
			if a.Job != nil {
				t.Errorf("a job that is not an object kept: %+v", a.Job)
			}
		case "odd-4":
			if a.Job == nil || a.Job.ID != "j4" || a.Job.State != "" || !a.Job.StartedAt.IsZero() {
				t.Errorf("job = %+v", a.Job)
			}
		}
	}
	// A good listing counts no field error.
	e2 := newEnv(t)
	putAgents(e2.srv, 3, "a")
	if list, err := e2.list(org, client.ListOptions{}); err != nil || list.FieldErrors != nil {
		t.Fatalf("field errors %v, err %v", list.FieldErrors, err)
	}
}

// TestFakeRequiredMembers: an agent whose id or connection_state is missing,
// null or not a string fails the listing.
func TestFakeRequiredMembers(t *testing.T) {
	for _, extra := range []map[string]any{
		{"id": buildkitetest.Omit}, {"id": nil}, {"id": 5}, {"id": ""}, {"id": map[string]any{"uuid": "x"}},
		{"connection_state": buildkitetest.Omit}, {"connection_state": nil}, {"connection_state": true},
	} {
		e := newEnv(t)
		putAgents(e.srv, 150, "a")
		e.srv.PutAgent(org, buildkitetest.Agent{ID: "z-bad", ConnectionState: buildkitetest.StateConnected, Extra: extra})
		list, err := e.list(org, client.ListOptions{})
		if !errors.Is(err, client.ErrMalformed) || list.Agents != nil {
			t.Errorf("%v: err = %v", extra, err)
		}
	}
}

// TestWebURLClusters reads cluster and queue from web_url.
func TestWebURLClusters(t *testing.T) {
	e := newEnv(t)
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "clustered", ConnectionState: buildkitetest.StateConnected, ClusterQueueID: "q-uuid"})
	e.srv.PutAgent(org, buildkitetest.Agent{ID: "plain", ConnectionState: buildkitetest.StateConnected})
	list, err := e.list(org, client.ListOptions{})
	if err != nil || len(list.Agents) != 2 || list.FieldErrors != nil {
		t.Fatal(list, err)
	}
	for _, a := range list.Agents {
		switch {
		case a.ID == "clustered" && (a.ClusterID == "" || a.QueueID != "q-uuid"):
			t.Errorf("clustered agent: cluster %q queue %q", a.ClusterID, a.QueueID)
		case a.ID == "plain" && (a.ClusterID != "" || a.QueueID != ""):
			t.Errorf("unclustered agent: cluster %q queue %q", a.ClusterID, a.QueueID)
		}
	}
}

// TestFakeRateLimitScopes: both budgets are kept from every response, the
// user's shared by every organization of the client.
func TestFakeRateLimitScopes(t *testing.T) {
	e := newEnv(t)
	putAgents(e.srv, 1, "a")
	e.srv.SetRateLimit(200)
	e.srv.SetUserRateLimit(50)
	if rl := e.c.RateLimits(org); rl.HasRest || rl.HasRestUser {
		t.Fatalf("budgets before any response: %+v", rl)
	}
	for _, o := range []string{org, org, "elsewhere"} {
		if _, err := e.list(o, client.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	acme, other := e.c.RateLimits(org), e.c.RateLimits("elsewhere")
	if !acme.HasRest || acme.Rest.Limit != 200 || acme.Rest.Remaining != 198 || acme.Rest.Reset != 60 || !acme.Rest.ObservedAt.Equal(epoch) {
		t.Errorf("acme rest = %+v", acme.Rest)
	}
	if !other.HasRest || other.Rest.Remaining != 199 {
		t.Errorf("elsewhere rest = %+v", other.Rest)
	}
	for _, rl := range []client.RateLimits{acme, other} {
		if !rl.HasRestUser || rl.RestUser.Limit != 50 || rl.RestUser.Remaining != 47 || !rl.RestUser.ResetAt().Equal(epoch.Add(time.Minute)) {
			t.Errorf("rest_user = %+v", rl.RestUser)
		}
	}
	if rest, ok := e.c.RateLimit(org); !ok || rest != acme.Rest {
		t.Errorf("RateLimit = %+v, want the rest budget", rest)
	}
}

// TestFakeUserRateLimitBlocksEveryOrganization: a 429 of scope rest_user
// stops requests to every organization of the client until the user
// reset; then they go out again.
func TestFakeUserRateLimitBlocksEveryOrganization(t *testing.T) {
	e := newEnv(t)
	putAgents(e.srv, 1, "a")
	e.srv.SetUserRateLimit(2)
	for _, o := range []string{org, "elsewhere"} {
		if _, err := e.list(o, client.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.set(epoch.Add(15 * time.Second))
	_, err := e.list(org, client.ListOptions{})
	var rle *client.RateLimitError
	reset := epoch.Add(time.Minute)
	if !errors.As(err, &rle) || !rle.Sent || rle.Scope != client.ScopeRestUser || !rle.ResetAt.Equal(reset) {
		t.Fatalf("err = %v (%+v)", err, rle)
	}
	e.checkRequests(t, 3)
	for _, o := range []string{org, "elsewhere", "never-seen"} {
		if got := e.c.BlockedUntil(o); !got.Equal(reset) {
			t.Errorf("BlockedUntil(%s) = %v, want %v", o, got, reset)
		}
		_, err := e.list(o, client.ListOptions{})
		if !errors.As(err, &rle) || rle.Sent || rle.Scope != client.ScopeRestUser {
			t.Errorf("%s: err = %v", o, err)
		}
	}
	e.checkRequests(t, 3)
	e.clock.set(reset)
	if _, err := e.list("elsewhere", client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRateLimitScopeFromHeaders: a 429 without a scope in its body is the
// user's when the user headers say so, else the organization's.
func TestRateLimitScopeFromHeaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"user warning", map[string]string{"RateLimit-User-Warning": "exceeded", "RateLimit-User-Reset": "9"}, client.ScopeRestUser},
		{"user spent", map[string]string{"RateLimit-User-Remaining": "0", "RateLimit-Remaining": "150", "RateLimit-User-Reset": "9"}, client.ScopeRestUser},
		{"organization spent", map[string]string{"RateLimit-User-Remaining": "10", "RateLimit-Remaining": "-1", "RateLimit-Reset": "9"}, client.ScopeRest},
		{"no headers", map[string]string{"RateLimit-Reset": "9"}, client.ScopeRest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.headers {
					w.Header().Set(k, v)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				w.Write([]byte(`{"message":"slow down"}`))
			}))
			defer srv.Close()
			c, err := client.New(client.Config{BaseURL: srv.URL, Token: client.StaticToken(fakeToken), Now: func() time.Time { return epoch }})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.ListAgents(context.Background(), "o", client.ListOptions{})
			var rle *client.RateLimitError
			if !errors.As(err, &rle) || rle.Scope != tc.want || !rle.ResetAt.Equal(epoch.Add(9*time.Second)) {
				t.Fatalf("err = %v (%+v)", err, rle)
			}
			blocked := !c.BlockedUntil("other").IsZero()
			if blocked != (tc.want == client.ScopeRestUser) {
				t.Fatalf("another organization blocked: %v", blocked)
			}
		})
	}
}

// TestFakeLinksNamingAnotherHost: behind a proxy that serves the API under
// another host and path, Buildkite's Links still name api.buildkite.com;
// every page is requested from the configured base URL, with the token.
func TestFakeLinksNamingAnotherHost(t *testing.T) {
	fake := buildkitetest.NewServer()
	defer fake.Close()
	fake.AddToken(fakeToken)
	fake.SetLinkOrigin("https://api.buildkite.com")
	putAgents(fake, 250, "a")
	var hosts atomic.Int32
	api := fake.Handler()
	proxy := httptest.NewServer(http.StripPrefix("/buildkite", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Add(1)
		api.ServeHTTP(w, r)
	})))
	defer proxy.Close()
	c, err := client.New(client.Config{BaseURL: proxy.URL + "/buildkite/v2", Token: client.StaticToken(fakeToken), PerPage: 100})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.ListAgents(context.Background(), org, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Agents) != 250 || list.Pages != 3 || list.Requests != 3 || hosts.Load() != 3 {
		t.Fatalf("agents %d, pages %d, requests %d, proxied %d", len(list.Agents), list.Pages, list.Requests, hosts.Load())
	}
	for _, r := range fake.Requests() {
		if r.Authorization != "Bearer "+fakeToken {
			t.Fatalf("request %s without the token", r.Path)
		}
	}
}

// TestFakeIgnoringPage: an API (or caching proxy) that answers page 1 for
// every page fails the listing instead of yielding page 1's agents as the
// fleet.
func TestFakeIgnoringPage(t *testing.T) {
	e := newEnv(t)
	putAgents(e.srv, 250, "a")
	e.srv.SetIgnorePage(true)
	list, err := e.list(org, client.ListOptions{})
	if !errors.Is(err, client.ErrMalformed) || !strings.Contains(err.Error(), "page parameter") || list.Agents != nil {
		t.Fatalf("err = %v, %d agents", err, len(list.Agents))
	}
	e.checkRequests(t, 3)
}

// TestListingBytesBound: the pages of one listing together may not pass
// MaxListingBytes.
func TestListingBytesBound(t *testing.T) {
	e := newEnv(t, func(cfg *client.Config) { cfg.MaxListingBytes = 100 << 10 })
	putAgents(e.srv, 300, "a") // about 2 KB an agent: 600 KB
	if _, err := e.list(org, client.ListOptions{}); !errors.Is(err, client.ErrMalformed) || !strings.Contains(err.Error(), "together") {
		t.Fatalf("err = %v", err)
	}
	e2 := newEnv(t)
	putAgents(e2.srv, 300, "a")
	if _, err := e2.list(org, client.ListOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestHugeHeaderFails: response headers are bounded by the client's own
// transport (the default, or when a given http.Client has none).
func TestHugeHeaderFails(t *testing.T) {
	link := `<https://api.buildkite.com/v2/organizations/o/agents?page=2>; rel="next", ` + strings.Repeat(`<x>; rel="a", `, 9<<20/14)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Link", link)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	for _, hc := range []*http.Client{nil, {}} {
		c, err := client.New(client.Config{BaseURL: srv.URL, Token: client.StaticToken(fakeToken), HTTPClient: hc, RetryBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		n.Store(0)
		list, err := c.ListAgents(context.Background(), "o", client.ListOptions{})
		if err == nil || !strings.Contains(err.Error(), "headers exceeded") {
			t.Fatalf("err = %v", err)
		}
		// Not retried: the server would send the same headers again.
		if n.Load() != 1 || list.Requests != 1 {
			t.Errorf("%d requests reached the server (%d counted), want 1", n.Load(), list.Requests)
		}
	}
}

// TestRedirectLoopCostsFewRequests: a same-host redirect loop ends after a
// few redirects, and is not retried.
func TestRedirectLoopCostsFewRequests(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	}))
	defer srv.Close()
	c, err := client.New(client.Config{BaseURL: srv.URL, Token: client.StaticToken(fakeToken), RetryBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.ListAgents(context.Background(), "o", client.ListOptions{})
	if err == nil || n.Load() > 4 || list.Requests != int(n.Load()) {
		t.Fatalf("err = %v; %d requests, %d reported", err, n.Load(), list.Requests)
	}
}
