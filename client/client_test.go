package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const testToken = "bkua_0123456789abcdef0123456789abcdef01234567"

// newTestClient returns a client for srv with fast retries.
func newTestClient(t *testing.T, baseURL string, mod ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{BaseURL: baseURL, Token: StaticToken(testToken), RetryBackoff: time.Millisecond}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// noToken fails the test if err's text contains the token.
func noToken(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), testToken) {
		t.Fatalf("error contains the token: %v", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func agentsJSON(ids ...string) string {
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf(`{"id":%q,"name":"n-%s","connection_state":"connected"}`, id, id))
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func TestNewValidates(t *testing.T) {
	tok := StaticToken("t")
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{Token: tok}, true},
		{"http base", Config{BaseURL: "http://localhost:8080/v2/", Token: tok}, true},
		{"no token", Config{}, false},
		{"ftp", Config{BaseURL: "ftp://x/v2", Token: tok}, false},
		{"no host", Config{BaseURL: "https:///v2", Token: tok}, false},
		{"relative", Config{BaseURL: "/v2", Token: tok}, false},
		{"credentials", Config{BaseURL: "https://u:secretpw@x/v2", Token: tok}, false},
		{"query", Config{BaseURL: "https://x/v2?a=b", Token: tok}, false},
		{"garbage", Config{BaseURL: "https://x/%zz", Token: tok}, false},
		{"per page too big", Config{Token: tok, PerPage: 101}, false},
		{"negative concurrency", Config{Token: tok, PageConcurrency: -1}, false},
		{"negative max bytes", Config{Token: tok, MaxResponseBytes: -1}, false},
		{"retries disabled", Config{Token: tok, MaxRetries: -1}, true},
		{"retries -2", Config{Token: tok, MaxRetries: -2}, false},
		{"negative backoff", Config{Token: tok, RetryBackoff: -time.Second}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), "secretpw") {
				t.Fatalf("error leaks credentials: %v", err)
			}
			if tc.name == "defaults" && (c.req.Base().String() != DefaultBaseURL || c.perPage != 100 ||
				c.pageConcurrency != 8 || c.maxPages != 1000 || c.maxListingBytes != 256<<20) {
				t.Fatalf("defaults not applied: %+v", c)
			}
		})
	}
}

func TestRequestHeadersAndEscaping(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, body = r.Clone(context.Background()), string(b)
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, 200, `{"id":"a/b?c","connection_state":"connected"}`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL+"/v2", func(cfg *Config) { cfg.UserAgent = "ua-test" })
	ctx := context.Background()

	a, _, err := c.GetAgent(ctx, "my org", "a/b?c")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != "a/b?c" {
		t.Fatalf("ID = %q", a.ID)
	}
	if p := got.URL.EscapedPath(); p != "/v2/organizations/my%20org/agents/a%2Fb%3Fc" {
		t.Fatalf("path = %q", p)
	}
	if got.Header.Get("Authorization") != "Bearer "+testToken || got.Header.Get("Accept") != "application/json" || got.UserAgent() != "ua-test" {
		t.Fatalf("headers = %v", got.Header)
	}

	for _, tc := range []struct {
		do       func() error
		path     string
		wantBody string
	}{
		{func() error { return c.StopAgent(ctx, "o", "x", true) }, "/v2/organizations/o/agents/x/stop", `{"force":true}`},
		{func() error { return c.StopAgent(ctx, "o", "x", false) }, "/v2/organizations/o/agents/x/stop", `{"force":false}`},
		{func() error { return c.PauseAgent(ctx, "o", "x", "why", 60) }, "/v2/organizations/o/agents/x/pause", `{"note":"why","timeout_in_minutes":60}`},
		{func() error { return c.PauseAgent(ctx, "o", "x", "", 0) }, "/v2/organizations/o/agents/x/pause", `{}`},
		{func() error { return c.ResumeAgent(ctx, "o", "x") }, "/v2/organizations/o/agents/x/resume", `{}`},
	} {
		if err := tc.do(); err != nil {
			t.Fatal(err)
		}
		if got.Method != http.MethodPut || got.URL.Path != tc.path || body != tc.wantBody || got.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s %q %q", got.Method, got.URL.Path, body, got.Header.Get("Content-Type"))
		}
	}

	for _, bad := range []struct{ org, id string }{{"", "x"}, {"o", ""}, {"..", "x"}, {"o", "."}} {
		if _, _, err := c.GetAgent(ctx, bad.org, bad.id); err == nil {
			t.Fatalf("GetAgent(%q, %q) succeeded", bad.org, bad.id)
		}
	}
	if err := c.PauseAgent(ctx, "o", "x", "", -1); err == nil {
		t.Fatal("negative timeout accepted")
	}
}

func TestAPIErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		action    bool
		want      error
		wantScope string
		wantMsg   string
	}{
		{"401", 401, `{"message":"Authentication required. Please supply a valid API Access Token"}`, false, ErrUnauthorized, "", "Authentication required"},
		{"403 named", 403, `{"message":"Your access token doesn't have the read_agents scope"}`, false, ErrForbidden, "read_agents", "read_agents scope"},
		{"403 write", 403, `{"message":"Your access token doesn't have the write_agents scope"}`, true, ErrForbidden, "write_agents", ""},
		{"403 other wording", 403, `{"message":"The fancy_thing scope is missing"}`, false, ErrForbidden, "fancy_thing", ""},
		{"403 unnamed list", 403, `{"message":"Forbidden"}`, false, ErrForbidden, "read_agents", "Forbidden"},
		{"403 unnamed action", 403, `not json`, true, ErrForbidden, "write_agents", "not json"},
		{"404", 404, `{"message":"No agent found"}`, false, ErrNotFound, "", "No agent found"},
		{"400", 400, `{"message":"Can only stop connected agents"}`, true, ErrRejected, "", "Can only stop connected agents"},
		{"422", 422, `{"message":"Agent is already paused","errors":[{"x":1}]}`, true, ErrRejected, "", "Agent is already paused"},
		{"409", 409, ``, true, ErrRejected, "", ""},
		{"500 html", 500, "<html>\n<body>oops\x00\x1b[31m</body></html>", false, ErrServer, "", "<html> <body>oops[31m</body></html>"},
		{"token echoed", 400, `{"message":"bad token ` + testToken + ` here"}`, true, ErrRejected, "", "bad token [REDACTED] here"},
		{"invalid utf8", 400, "{\"message\":\"a\xffb\"}", true, ErrRejected, "", "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				writeJSON(w, tc.status, tc.body)
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL)
			var err error
			if tc.action {
				err = c.StopAgent(context.Background(), "org", "id", true)
			} else {
				_, err = c.ListAgents(context.Background(), "org", ListOptions{})
			}
			noToken(t, err)
			var ae *APIError
			if !errors.Is(err, tc.want) || !errors.As(err, &ae) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if ae.StatusCode != tc.status || ae.Scope != tc.wantScope || !strings.Contains(ae.Message, tc.wantMsg) {
				t.Fatalf("APIError = %+v", ae)
			}
			if ae.Scope != "" && !strings.Contains(err.Error(), ae.Scope) {
				t.Fatalf("error does not name the scope: %v", err)
			}
			wantN := int32(1)
			if tc.status >= 500 {
				wantN = 3 // 1 + default MaxRetries
			}
			if n.Load() != wantN {
				t.Fatalf("requests = %d, want %d", n.Load(), wantN)
			}
		})
	}
}

func TestRateLimitHeadersAnd429(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Pointer[time.Time]
	clock.Store(&now)
	for _, tc := range []struct {
		name      string
		header    string
		body      string
		wantReset time.Duration
	}{
		{"header", "42", `{"message":"You have exceeded your API rate limit.","reset":10}`, 42 * time.Second},
		{"body", "", `{"message":"slow down","reset":17}`, 17 * time.Second},
		{"default", "", `nope`, 60 * time.Second},
		{"garbage header, body", "soon", `{"reset":5.2}`, 6 * time.Second},
		{"zero", "0", ``, time.Second},
		{"huge", "99999999", ``, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if strings.Contains(r.URL.Path, "/other/") {
					w.Header().Set("RateLimit-Remaining", "150")
					writeJSON(w, 200, `[]`)
					return
				}
				w.Header().Set("RateLimit-Limit", "200")
				w.Header().Set("RateLimit-Remaining", "-3")
				if tc.header != "" {
					w.Header().Set("RateLimit-Reset", tc.header)
				}
				writeJSON(w, 429, tc.body)
			}))
			defer srv.Close()
			ctx := context.Background()
			c := newTestClient(t, srv.URL, func(cfg *Config) {
				cfg.Now = func() time.Time { return *clock.Load() }
			})
			list, err := c.ListAgents(ctx, "org", ListOptions{})
			var rle *RateLimitError
			if !errors.As(err, &rle) || !rle.Sent || !errors.Is(err, ErrRateLimited) || rle.Scope != ScopeRest {
				t.Fatalf("err = %v", err)
			}
			if want := now.Add(tc.wantReset); !rle.ResetAt.Equal(want) || !c.BlockedUntil("org").Equal(want) {
				t.Fatalf("ResetAt = %v, BlockedUntil = %v, want %v", rle.ResetAt, c.BlockedUntil("org"), want)
			}
			rl, ok := c.RateLimit("org")
			if !ok || rl.Limit != 200 || rl.Remaining != -3 || !rl.ObservedAt.Equal(now) {
				t.Fatalf("RateLimit = %+v, %v", rl, ok)
			}
			// Blocked: no request at all, for any endpoint of this org.
			for _, call := range []func() error{
				func() error { _, err := c.ListAgents(ctx, "org", ListOptions{}); return err },
				func() error { _, _, err := c.GetAgent(ctx, "org", "x"); return err },
				func() error { return c.ResumeAgent(ctx, "org", "x") },
			} {
				err := call()
				if !errors.As(err, &rle) || rle.Sent {
					t.Fatalf("err = %v", err)
				}
			}
			if n.Load() != 1 || list.Requests != 1 {
				t.Fatalf("requests = %d, listed %d", n.Load(), list.Requests)
			}
			// Other organizations are unaffected.
			if _, err := c.ListAgents(ctx, "other", ListOptions{}); err != nil {
				t.Fatal(err)
			}
			if rl, _ := c.RateLimit("other"); rl.Remaining != 150 {
				t.Fatalf("other RateLimit = %+v", rl)
			}
			// After the window the org is tried again.
			later := now.Add(tc.wantReset)
			clock.Store(&later)
			defer clock.Store(&now)
			if !c.BlockedUntil("org").IsZero() {
				t.Fatal("still blocked after the window")
			}
			_, _ = c.ListAgents(ctx, "org", ListOptions{})
			if n.Load() != 3 {
				t.Fatalf("requests = %d after the window", n.Load())
			}
		})
	}
}

func TestListPagination(t *testing.T) {
	type page struct {
		link string
		ids  []string
	}
	for _, tc := range []struct {
		name     string
		pages    map[string]page // by page param ("" = 1)
		want     []string
		wantDups int
		wantErr  error
		wantReqs int
		maxPages int
	}{
		{
			name:     "single page, no Link",
			pages:    map[string]page{"1": {"", []string{"a", "b"}}},
			want:     []string{"a", "b"},
			wantReqs: 1,
		},
		{
			name: "last, then next beyond it, with a shifted duplicate",
			pages: map[string]page{
				"1": {`<{base}?page=2&per_page=100>; rel="next", <{base}?page=3&per_page=100>; rel="last"`, []string{"a", "b"}},
				"2": {"", []string{"b", "c"}},
				"3": {`<{base}?per_page=100&page=4>; rel="next"`, []string{"d"}},
				"4": {``, []string{"e", "a"}},
			},
			want: []string{"a", "b", "c", "d", "e"}, wantDups: 2, wantReqs: 4,
		},
		{
			name: "next only, unquoted and reordered",
			pages: map[string]page{
				"1": {`<{base}?page=2&per_page=100>;rel=next`, []string{"a"}},
				"2": {`< {base}?page=3&per_page=100 > ; title="x" ; rel = "prev next"`, []string{"b"}},
				"3": {`<{base}?page=3&per_page=100>; rel="self"`, []string{"c"}},
			},
			want: []string{"a", "b", "c"}, wantReqs: 3,
		},
		{
			name: "relative link",
			pages: map[string]page{
				"1": {`</v2/organizations/org/agents?page=2&per_page=100>; rel="next"`, []string{"a"}},
				"2": {"", []string{"b"}},
			},
			want: []string{"a", "b"}, wantReqs: 2,
		},
		{
			name: "loop",
			pages: map[string]page{
				"1": {`<{base}?page=2&per_page=100>; rel="next"`, []string{"a"}},
				"2": {`<{base}?page=1&per_page=100>; rel="next"`, []string{"b"}},
			},
			wantErr: ErrPageLimit, wantReqs: 2,
		},
		{
			name: "next to itself",
			pages: map[string]page{
				"1": {`<{base}?page=1&per_page=100>; rel="next"`, []string{"a"}},
			},
			wantErr: ErrPageLimit, wantReqs: 1,
		},
		{
			name: "next without a page number",
			pages: map[string]page{
				"1": {`<{base}?per_page=100>; rel="next"`, []string{"a"}},
			},
			wantErr: ErrMalformed, wantReqs: 1,
		},
		{
			name: "last beyond MaxPages",
			pages: map[string]page{
				"1": {`<{base}?page=9&per_page=100>; rel="last"`, []string{"a"}},
			},
			wantErr: ErrPageLimit, wantReqs: 1, maxPages: 5,
		},
		{
			name: "next beyond MaxPages",
			pages: map[string]page{
				"1": {`<{base}?page=2&per_page=100>; rel="next"`, []string{"a"}},
				"2": {`<{base}?page=3&per_page=100>; rel="next"`, []string{"b"}},
			},
			wantErr: ErrPageLimit, wantReqs: 2, maxPages: 2,
		},
		{
			name:    "garbage Link",
			pages:   map[string]page{"1": {`https://x; rel=next`, []string{"a"}}},
			wantErr: ErrMalformed, wantReqs: 1,
		},
		{
			name: "a page fails",
			pages: map[string]page{
				"1": {`<{base}?page=3&per_page=100>; rel="last"`, []string{"a"}},
				"3": {"", []string{"c"}},
			},
			wantErr: ErrNotFound, wantReqs: -1, // page 3 may be canceled before it is sent
		},
		{
			name: "last without page number falls back to next",
			pages: map[string]page{
				"1": {`<{base}?cursor=x>; rel="last", <{base}?page=2&per_page=100>; rel="next"`, []string{"a"}},
				"2": {"", []string{"b"}},
			},
			want: []string{"a", "b"}, wantReqs: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if r.URL.Query().Get("per_page") != "100" {
					t.Errorf("per_page missing: %s", r.URL.RawQuery)
				}
				p := r.URL.Query().Get("page")
				if p == "" {
					p = "1"
				}
				pg, ok := tc.pages[p]
				if !ok {
					writeJSON(w, 404, `{"message":"nope"}`)
					return
				}
				if pg.link != "" {
					w.Header().Set("Link", strings.ReplaceAll(pg.link, "{base}", srv.URL+"/v2/organizations/org/agents"))
				}
				writeJSON(w, 200, agentsJSON(pg.ids...))
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL+"/v2", func(cfg *Config) { cfg.MaxPages = tc.maxPages })
			list, err := c.ListAgents(context.Background(), "org", ListOptions{})
			noToken(t, err)
			if tc.wantReqs >= 0 && int(n.Load()) != tc.wantReqs {
				t.Errorf("requests = %d, want %d", n.Load(), tc.wantReqs)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || list == nil || list.Agents != nil || list.Requests < int(n.Load()) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, a := range list.Agents {
				ids = append(ids, a.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") || list.Duplicates != tc.wantDups || list.Pages != tc.wantReqs {
				t.Fatalf("got %v dups %d pages %d", ids, list.Duplicates, list.Pages)
			}
		})
	}
}

func TestListFilters(t *testing.T) {
	var q url.Values
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q = r.URL.Query()
		writeJSON(w, 200, `[]`)
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL)
	list, err := c.ListAgents(context.Background(), "o", ListOptions{Name: "a b", Hostname: "h&x", Version: "3.1", ClusterQueueID: "q"})
	if err != nil || len(list.Agents) != 0 || list.Pages != 1 {
		t.Fatal(list, err)
	}
	want := url.Values{"per_page": {"100"}, "name": {"a b"}, "hostname": {"h&x"}, "version": {"3.1"}, "cluster_queue_id": {"q"}}
	if q.Encode() != want.Encode() {
		t.Fatalf("query = %v", q)
	}
}

// TestUnsafeLinks checks that no Link or redirect makes the client send the
// token to another host.
func TestLinksNameOnlyAPage(t *testing.T) {
	var foreignHits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
		writeJSON(w, 200, `[]`)
	}))
	defer foreign.Close()
	for _, tc := range []struct {
		name string
		link func(self string) string
		want string
	}{
		{"next foreign", func(string) string { return `<` + foreign.URL + `/v2/organizations/org/agents?page=2>; rel="next"` }, "a b"},
		{"last foreign, other path", func(string) string { return `<` + foreign.URL + `/x?page=2>; rel="last"` }, "a b"},
		{"prev foreign", func(string) string { return `<` + foreign.URL + `/x?page=1>; rel="prev"` }, "a"},
		{"protocol relative", func(self string) string {
			return `<//` + strings.TrimPrefix(foreign.URL, "http://") + `/x?page=2>; rel="next"`
		}, "a b"},
		{"https", func(self string) string {
			return `<https://` + strings.TrimPrefix(self, "http://") + `/x?page=2>; rel="next"`
		}, "a b"},
		{"other port", func(self string) string { return `<http://127.0.0.1:1/x?page=2>; rel="next"` }, "a b"},
		{"user info", func(self string) string {
			return `<http://user:pw@` + strings.TrimPrefix(self, "http://") + `/x?page=2>; rel="next"`
		}, "a b"},
		{"relative", func(string) string { return `<?page=2>; rel="next"` }, "a b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			var n atomic.Int32
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if r.URL.Path != "/v2/organizations/org/agents" || r.Header.Get("Authorization") == "" {
					t.Errorf("request %s without the token or off the base URL", r.URL)
				}
				if r.URL.Query().Get("page") == "2" {
					writeJSON(w, 200, agentsJSON("b"))
					return
				}
				w.Header().Set("Link", tc.link(srv.URL))
				writeJSON(w, 200, agentsJSON("a"))
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL+"/v2")
			list, err := c.ListAgents(context.Background(), "org", ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, a := range list.Agents {
				ids = append(ids, a.ID)
			}
			if got := strings.Join(ids, " "); got != tc.want || int(n.Load()) != list.Requests {
				t.Fatalf("agents %q, want %q; requests %d, reported %d", got, tc.want, n.Load(), list.Requests)
			}
		})
	}
	if foreignHits.Load() != 0 {
		t.Fatalf("foreign host got %d requests", foreignHits.Load())
	}
}

// TestRedirects: a same-host redirect is followed with the token, one to
// another host is refused before anything is sent there.
func TestRedirects(t *testing.T) {
	var foreignHits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
		writeJSON(w, 200, `[]`)
	}))
	defer foreign.Close()
	// Redirects: same host is followed, another host refused.
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/same"):
			http.Redirect(w, r, srv.URL+"/organizations/o/agents/b", http.StatusFound)
		case strings.HasSuffix(r.URL.Path, "/far"):
			http.Redirect(w, r, foreign.URL+"/organizations/o/agents/b", http.StatusFound)
		default:
			if r.Header.Get("Authorization") == "" {
				t.Error("same-host redirect lost the Authorization header")
			}
			writeJSON(w, 200, `{"id":"b","connection_state":"connected"}`)
		}
	}))
	defer srv.Close()
	for _, hc := range []*http.Client{nil, {}} {
		c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.HTTPClient = hc })
		if a, _, err := c.GetAgent(context.Background(), "o", "same"); err != nil || a.ID != "b" {
			t.Fatal(a, err)
		}
		_, _, err := c.GetAgent(context.Background(), "o", "far")
		noToken(t, err)
		if !errors.Is(err, ErrUnsafeLink) {
			t.Fatalf("err = %v", err)
		}
	}
	if foreignHits.Load() != 0 {
		t.Fatalf("foreign host got %d requests", foreignHits.Load())
	}
}

func TestResponseBodies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ct      string
		body    string
		get     bool
		max     int64
		want    error
		wantMsg string
	}{
		{"ok list", "application/json", `[]`, false, 0, nil, ""},
		{"charset", "Application/JSON; charset=UTF-8", agentsJSON("a"), false, 0, nil, ""},
		{"wrong type", "text/html", `[]`, false, 0, ErrMalformed, `"text/html"`},
		{"latin1", "application/json; charset=iso-8859-1", `[]`, false, 0, ErrMalformed, "iso-8859-1"},
		{"no type", "", `[]`, false, 0, ErrMalformed, "content type"},
		{"empty", "application/json", ``, false, 0, ErrMalformed, "empty"},
		{"null list", "application/json", `null`, false, 0, ErrMalformed, "null"},
		{"object for list", "application/json", `{"id":"a"}`, false, 0, ErrMalformed, "array"},
		{"truncated", "application/json", `[{"id":"a"},{"id":`, false, 0, ErrMalformed, ""},
		{"trailing", "application/json", `[] []`, false, 0, ErrMalformed, "trailing"},
		{"bad time tolerated", "application/json", `[{"id":"a","connection_state":"c","created_at":"yesterday"}]`, false, 0, nil, ""},
		{"no connection_state", "application/json", `[{"id":"a"}]`, false, 0, ErrMalformed, "connection_state"},
		{"oversize", "application/json", `[` + strings.Repeat(" ", 200) + `]`, false, 100, ErrMalformed, "exceeds"},
		{"oversize streamed", "application/json", "chunked", false, 100, ErrMalformed, "exceeds"},
		{"exactly max", "application/json", `[` + strings.Repeat(" ", 98) + `]`, false, 100, nil, ""},
		{"get ok", "application/json", `{"id":"a","connection_state":"lost","priority":3}`, true, 0, nil, ""},
		{"get null", "application/json", `null`, true, 0, ErrMalformed, "agent object"},
		{"get empty", "application/json", ``, true, 0, ErrMalformed, ""},
		{"get array", "application/json", `[]`, true, 0, ErrMalformed, ""},
		{"get no id", "application/json", `{}`, true, 0, ErrMalformed, "id"},
		{"get trailing", "application/json", `{"id":"a","connection_state":"c"} {}`, true, 0, ErrMalformed, "after top-level value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.ct != "" {
					w.Header().Set("Content-Type", tc.ct)
				} else {
					w.Header()["Content-Type"] = nil // no sniffing
				}
				if tc.body == "chunked" {
					w.WriteHeader(http.StatusOK)
					io.WriteString(w, "[")
					for i := 0; i < 100; i++ {
						io.WriteString(w, "  ")
						w.(http.Flusher).Flush()
					}
					io.WriteString(w, "]")
					return
				}
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.MaxResponseBytes = tc.max })
			var err error
			if tc.get {
				_, _, err = c.GetAgent(context.Background(), "o", "a")
			} else {
				_, err = c.ListAgents(context.Background(), "o", ListOptions{})
			}
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.want, tc.wantMsg)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxRetries int
		fail       int // requests failing before success
		mode       string
		wantReqs   int32
		wantErr    error
	}{
		{"5xx then ok", 0, 2, "503", 3, nil},
		{"5xx exhausted", 0, 9, "502", 3, ErrServer},
		{"5xx no retries", -1, 9, "500", 1, ErrServer},
		{"5xx more retries", 4, 4, "500", 5, nil},
		{"connection closed", 0, 1, "close", 2, nil},
		{"truncated body", 0, 1, "truncate", 2, nil},
		{"truncated exhausted", 0, 9, "truncate", 3, ErrMalformed},
		{"4xx not retried", 0, 9, "404", 1, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if int(n.Add(1)) > tc.fail {
					writeJSON(w, 200, agentsJSON("a"))
					return
				}
				switch tc.mode {
				case "close":
					conn, _, _ := w.(http.Hijacker).Hijack()
					conn.Close()
				case "truncate":
					w.Header().Set("Content-Type", "application/json")
					w.Header().Set("Content-Length", "100")
					io.WriteString(w, `[{"id":"a"}`)
					w.(http.Flusher).Flush()
					conn, _, _ := w.(http.Hijacker).Hijack()
					conn.Close()
				default:
					code, _ := strconv.Atoi(tc.mode)
					writeJSON(w, code, `{"message":"boom"}`)
				}
			}))
			defer srv.Close()
			var codes []int
			var mu sync.Mutex
			c := newTestClient(t, srv.URL, func(cfg *Config) {
				cfg.MaxRetries = tc.maxRetries
				cfg.Observer = ObserverFunc(func(org string, code int) {
					mu.Lock()
					codes = append(codes, code)
					mu.Unlock()
				})
			})
			list, err := c.ListAgents(context.Background(), "o", ListOptions{})
			noToken(t, err)
			if n.Load() != tc.wantReqs || list.Requests != int(tc.wantReqs) || len(codes) != int(tc.wantReqs) {
				t.Fatalf("requests = %d, listed %d, observed %v; want %d", n.Load(), list.Requests, codes, tc.wantReqs)
			}
			if tc.wantErr == nil {
				if err != nil || len(list.Agents) != 1 {
					t.Fatal(list, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestDeadlines(t *testing.T) {
	// A hanging server: the call ends at the deadline.
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newTestClient(t, srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.ListAgents(ctx, "o", ListOptions{})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
	noToken(t, err)

	// A 5xx with a backoff longer than the deadline leaves: no retry.
	var n atomic.Int32
	srv5 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		writeJSON(w, 503, `{}`)
	}))
	defer srv5.Close()
	c = newTestClient(t, srv5.URL, func(cfg *Config) { cfg.RetryBackoff = 10 * time.Second })
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start = time.Now()
	_, err = c.ListAgents(ctx, "o", ListOptions{})
	if !errors.Is(err, ErrServer) || n.Load() != 1 || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("err = %v, requests %d, after %v", err, n.Load(), time.Since(start))
	}

	// Canceled before the call: no request.
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, _, err := c.GetAgent(ctx, "o", "x"); !errors.Is(err, context.Canceled) || n.Load() != 1 {
		t.Fatalf("err = %v", err)
	}
}

// TestConcurrentPagesFailFast checks that one failing page cancels the
// others promptly and bounds concurrency.
func TestConcurrentPagesFailFast(t *testing.T) {
	var inFlight, maxInFlight atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := maxInFlight.Load()
			if cur <= m || maxInFlight.CompareAndSwap(m, cur) {
				break
			}
		}
		p := r.URL.Query().Get("page")
		switch p {
		case "":
			w.Header().Set("Link", "<"+srv.URL+"/organizations/o/agents?page=50>; rel=\"last\"")
			writeJSON(w, 200, agentsJSON("a"))
		case "7":
			time.Sleep(20 * time.Millisecond)
			writeJSON(w, 401, `{"message":"no"}`)
		default:
			select { // slow pages: only cancellation ends them early
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.PageConcurrency = 10 })
	start := time.Now()
	_, err := c.ListAgents(context.Background(), "o", ListOptions{})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}
	if m := maxInFlight.Load(); m > 10 {
		t.Fatalf("max in flight = %d", m)
	}
}

func TestTokenNeverSentElsewhereOrLeaked(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  TokenSource
	}{
		{"empty", StaticToken("")},
		{"newline", StaticToken(testToken + "\nX-Evil: 1")},
		{"space", StaticToken("a " + testToken)},
		{"source error", tokenFunc(func() (string, error) { return "", errors.New("vault down") })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
			defer srv.Close()
			c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.Token = tc.tok })
			_, err := c.ListAgents(context.Background(), "o", ListOptions{})
			if err == nil || n.Load() != 0 {
				t.Fatalf("err = %v, requests %d", err, n.Load())
			}
			noToken(t, err)
		})
	}
	// A broken server whose garbage, quoted by net/http, holds the token.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, _ := w.(http.Hijacker).Hijack()
		buf.WriteString("HTTP/1.1 " + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + " OK\r\n\r\n")
		buf.Flush()
		conn.Close()
	}))
	defer echo.Close()
	_, _, err := newTestClient(t, echo.URL).GetAgent(context.Background(), "o", "a")
	if err == nil || !strings.Contains(err.Error(), redacted) {
		t.Fatalf("err = %v", err)
	}
	noToken(t, err)

	// A transport error: the url.Error keeps no query and no token.
	c := newTestClient(t, "http://127.0.0.1:1/v2", func(cfg *Config) { cfg.MaxRetries = -1 })
	_, err = c.ListAgents(context.Background(), "o", ListOptions{Name: "secret-name"})
	var ue *url.Error
	if !errors.As(err, &ue) || strings.Contains(err.Error(), "secret-name") || strings.Contains(err.Error(), "per_page") {
		t.Fatalf("err = %v", err)
	}
	noToken(t, err)
}

type tokenFunc func() (string, error)

func (f tokenFunc) Token() (string, error) { return f() }

func TestFileToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	write := func(p, s string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := FileToken(path); err == nil {
		t.Fatal("missing file accepted")
	}
	write(path, " \n\t", 0o600)
	if _, err := FileToken(path); err == nil {
		t.Fatal("empty file accepted")
	}
	write(path, "  first-token\n", 0o600)
	s, err := FileToken(path)
	if err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Token(); tok != "first-token" || err != nil {
		t.Fatal(tok, err)
	}
	if s.WorldReadable() {
		t.Fatal("0600 is world readable")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if !s.WorldReadable() {
		t.Fatal("0644 not world readable")
	}

	// A new file renamed over the old one (same size, maybe same mtime).
	tmp := filepath.Join(dir, "new")
	write(tmp, "other-token\n", 0o600)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if tok, _ := s.Token(); tok != "other-token" {
		t.Fatalf("after rename: %q", tok)
	}

	// Kubernetes style: token -> ..data/token, ..data swapped atomically.
	for i, v := range []string{"v1", "v2"} {
		d := filepath.Join(dir, fmt.Sprintf("data%d", i))
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(d, "token"), "k8s-token-"+v, 0o600)
	}
	link := filepath.Join(dir, "..data")
	if err := os.Symlink("data0", link); err != nil {
		t.Fatal(err)
	}
	kpath := filepath.Join(dir, "ktoken")
	if err := os.Symlink(filepath.Join("..data", "token"), kpath); err != nil {
		t.Fatal(err)
	}
	ks, err := FileToken(kpath)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := ks.Token(); tok != "k8s-token-v1" {
		t.Fatal(tok)
	}
	tmpLink := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink("data1", tmpLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmpLink, link); err != nil {
		t.Fatal(err)
	}
	if tok, _ := ks.Token(); tok != "k8s-token-v2" {
		t.Fatalf("after symlink swap: %q", tok)
	}

	// Errors never contain the token; a vanished file is an error.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Token(); err == nil || strings.Contains(err.Error(), "other-token") {
		t.Fatalf("err = %v", err)
	}
	write(path, "x\x00y", 0o600)
	c := newTestClient(t, "http://127.0.0.1:1", func(cfg *Config) { cfg.Token = s })
	_, _, err = c.GetAgent(context.Background(), "o", "a")
	if err == nil || strings.Contains(err.Error(), "x\x00y") {
		t.Fatalf("err = %v", err)
	}
}

func TestParseLinkHeader(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{``, map[string]string{}, false},
		{`<https://a/x?page=2>; rel="next"`, map[string]string{"next": "https://a/x?page=2"}, false},
		{`<u1>; rel="next", <u2>; rel="last"`, map[string]string{"next": "u1", "last": "u2"}, false},
		{`<u2>;rel=last,<u1>;rel=next`, map[string]string{"next": "u1", "last": "u2"}, false},
		{` < u1 > ;  REL = "Next" ; title="a;b,c" , `, map[string]string{"next": "u1"}, false},
		{`<u1>; rel="next last"`, map[string]string{"next": "u1", "last": "u1"}, false},
		{`<u1>; rel="next", <u2>; rel="next"`, map[string]string{"next": "u1"}, false},
		{`<u1>; title="no rel"`, map[string]string{}, false},
		{`<u1>; rel="next"; rel="last"`, map[string]string{"next": "u1"}, false},
		{`<a,b;c>; rel="next"`, map[string]string{"next": "a,b;c"}, false},
		{`<u1>; rel="ne\"xt"`, map[string]string{`ne"xt`: "u1"}, false},
		{`<u1>;; rel=next`, map[string]string{"next": "u1"}, false},
		{`u1; rel=next`, nil, true},
		{`<u1; rel=next`, nil, true},
		{`<u1> rel=next`, nil, true},
		{`<u1>; rel="next`, nil, true},
		{`<u1>; ="x"`, nil, true},
		{`<>; rel=next`, nil, true},
		{`<u1>; rel=next <u2>`, nil, true},
	} {
		got, err := ParseLinkHeader(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err = %v", tc.in, err)
			continue
		}
		if !tc.wantErr && fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%q: got %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestObserverCodes(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Limit", "200")
		w.Header().Set("RateLimit-Remaining", "199")
		w.Header().Set("RateLimit-Reset", "30")
		if strings.Contains(r.URL.Path, "missing") {
			writeJSON(w, 404, `{"message":"No agent found"}`)
			return
		}
		writeJSON(w, 200, `{"id":"a","connection_state":"connected"}`)
	}))
	defer srv.Close()
	type obs struct {
		org  string
		code int
	}
	var got []obs
	c := newTestClient(t, srv.URL, func(cfg *Config) {
		cfg.Observer = ObserverFunc(func(org string, code int) { got = append(got, obs{org, code}) })
	})
	_, _, _ = c.GetAgent(context.Background(), "o1", "a")
	_, _, _ = c.GetAgent(context.Background(), "o2", "missing")
	if fmt.Sprint(got) != "[{o1 200} {o2 404}]" {
		t.Fatalf("observed %v", got)
	}
	if rl, ok := c.RateLimit("o2"); !ok || rl != (RateLimit{200, 199, 30, rl.ObservedAt}) || rl.ObservedAt.IsZero() {
		t.Fatalf("RateLimit = %+v", rl)
	}
	if _, ok := c.RateLimit("o3"); ok {
		t.Fatal("RateLimit for unseen org")
	}
}
