package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testToken = "bkua_0123456789abcdef0123456789abcdef01234567"

func newRequester(t *testing.T, base string, mod func(*Config)) *Requester {
	t.Helper()
	u, err := ParseBaseURL(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Base: u, Token: func() (string, error) { return testToken, nil }, RetryBackoff: time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func endpoint(t *testing.T, r *Requester, path string) *url.URL {
	t.Helper()
	u, err := r.Endpoint(path, "a=b")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestPostJSON: a POST carries its JSON body, the auth scheme asked for,
// and hands the answer to the handler.
func TestPostJSON(t *testing.T) {
	for _, scheme := range []string{"", "Token"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			want := "Bearer " + testToken
			if scheme != "" {
				want = scheme + " " + testToken
			}
			if r.Method != http.MethodPost || r.URL.Path != "/graphql/v1" || r.URL.RawQuery != "a=b" ||
				r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != want || string(body) != `{"query":"{}"}` {
				t.Errorf("request %s %s %q %q %q", r.Method, r.URL, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), body)
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"data":{}}`)
		}))
		r := newRequester(t, srv.URL+"/graphql", func(c *Config) { c.AuthScheme = scheme })
		var got string
		n, err := r.Do(context.Background(), Request{Method: http.MethodPost, URL: endpoint(t, r, "/v1"), Body: []byte(`{"query":"{}"}`)},
			func(resp *Response) error { got = string(resp.Body); return nil })
		srv.Close()
		if err != nil || n != 1 || got != `{"data":{}}` {
			t.Fatalf("n %d, body %q, err %v", n, got, err)
		}
	}
}

// TestErrorMapping: every non-2xx answer is an *APIError wrapping the
// sentinel of its code; 5xx are retried, nothing else is.
func TestErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		code     int
		body     string
		want     error
		requests int
	}{
		{401, `{"message":"no"}`, ErrUnauthorized, 1},
		{403, `{"message":"Your access token doesn't have the read_clusters scope"}`, ErrForbidden, 1},
		{404, `{"message":"No organization found"}`, ErrNotFound, 1},
		{422, `{"message":"nope"}`, ErrRejected, 1},
		{429, `{"message":"slow","scope":"rest_user","reset":41.5}`, ErrRateLimited, 1},
		{500, `<html>` + testToken + `</html>`, ErrServer, 3},
		{302, ``, ErrMalformed, 1},
		{401, `{"errors":[{"message":"bad ` + testToken + `"},{"message":"b"},{"message":"c"},{"message":"d"}]}`, ErrUnauthorized, 1},
	} {
		var hits atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(tc.code)
			io.WriteString(w, tc.body)
		}))
		var observed []int
		r := newRequester(t, srv.URL, func(c *Config) {
			c.MaxRetries = 2
			c.Observe = func(_ string, code int) { observed = append(observed, code) }
		})
		n, err := r.Do(context.Background(), Request{Method: http.MethodGet, URL: endpoint(t, r, "/x"), Scope: "read_agents"}, nil)
		srv.Close()
		var ae *APIError
		if !errors.Is(err, tc.want) || !errors.As(err, &ae) || ae.StatusCode != tc.code || n != tc.requests ||
			int(hits.Load()) != n || len(observed) != n || strings.Contains(err.Error(), testToken) {
			t.Fatalf("%d: err %v, %d requests, %d hits, observed %v", tc.code, err, n, hits.Load(), observed)
		}
		switch tc.code {
		case 403:
			if ae.Scope != "read_clusters" {
				t.Errorf("403 scope %q", ae.Scope)
			}
		case 401:
			if want := map[string]string{`{"message":"no"}`: "no"}[tc.body]; want == "" && ae.Message != "bad [REDACTED]; b; c" {
				t.Errorf("401 with a GraphQL errors array: message %q", ae.Message)
			}
		case 429:
			if ae.LimitScope != "rest_user" || ae.Reset != 42 || ae.Header == nil {
				t.Errorf("429: %+v", ae)
			}
		}
	}
}

// TestGraphQLContentType: GraphQL's own JSON media type is JSON.
func TestGraphQLContentType(t *testing.T) {
	for ct, ok := range map[string]bool{
		"application/graphql-response+json": true, "application/json; charset=utf-8": true, "text/html": false,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			io.WriteString(w, `{}`)
		}))
		r := newRequester(t, srv.URL, nil)
		_, err := r.Do(context.Background(), Request{Method: http.MethodPost, URL: endpoint(t, r, "/v1"), Body: []byte(`{}`)},
			func(*Response) error { return nil })
		srv.Close()
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%s: err %v", ct, err)
		}
	}
}

// TestHooks: Gate stops a request unsent; Header sees every answer.
func TestHooks(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("RateLimit-Remaining", "7")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `[]`)
	}))
	defer srv.Close()
	closed := errors.New("closed")
	var seen []string
	r := newRequester(t, srv.URL, func(c *Config) {
		c.Gate = func(key string) error {
			if key == "blocked" {
				return closed
			}
			return nil
		}
		c.Header = func(key string, code int, h http.Header) { seen = append(seen, key+" "+h.Get("RateLimit-Remaining")) }
	})
	if n, err := r.Do(context.Background(), Request{Method: http.MethodGet, URL: endpoint(t, r, "/x"), Key: "blocked"}, nil); n != 0 || !errors.Is(err, closed) {
		t.Fatalf("gate: n %d, err %v", n, err)
	}
	if n, err := r.Do(context.Background(), Request{Method: http.MethodGet, URL: endpoint(t, r, "/x"), Key: "open"}, nil); n != 1 || err != nil {
		t.Fatalf("open: n %d, err %v", n, err)
	}
	if hits.Load() != 1 || strings.Join(seen, ",") != "open 7" {
		t.Fatalf("hits %d, headers seen %v", hits.Load(), seen)
	}
}

// TestOffBase: a URL off the base origin is refused before anything is
// sent; a redirect loop costs at most 1+MaxRedirects requests and is not
// retried.
func TestOffBaseAndRedirectLoop(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	}))
	defer srv.Close()
	r := newRequester(t, srv.URL, func(c *Config) { c.MaxRetries = 2 })
	other, _ := url.Parse("http://127.0.0.1:1/x")
	if n, err := r.Do(context.Background(), Request{Method: http.MethodGet, URL: other}, nil); n != 0 || !errors.Is(err, ErrUnsafeLink) {
		t.Fatalf("off base: n %d, err %v", n, err)
	}
	n, err := r.Do(context.Background(), Request{Method: http.MethodGet, URL: endpoint(t, r, "/loop")}, nil)
	if !errors.Is(err, ErrMalformed) || n != 1+MaxRedirects || int(hits.Load()) != n {
		t.Fatalf("loop: n %d, hits %d, err %v", n, hits.Load(), err)
	}
}

// TestBodyRetriedWhenCut: a body shorter than its Content-Length is
// retried, and the handler runs again from scratch.
func TestBodyRetriedWhenCut(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if hits.Add(1) == 1 {
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, `[1,`)
			return
		}
		io.WriteString(w, `[1]`)
	}))
	defer srv.Close()
	r := newRequester(t, srv.URL, func(c *Config) { c.MaxRetries = 1 })
	calls := 0
	n, err := r.Do(context.Background(), Request{Method: http.MethodGet, URL: endpoint(t, r, "/x")}, func(resp *Response) error {
		calls++
		return nil
	})
	if err != nil || n != 2 || calls != 1 {
		t.Fatalf("n %d, handler calls %d, err %v", n, calls, err)
	}
}
