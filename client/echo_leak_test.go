package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// TestTokenEchoedByServerNeverInErrors: a hostile or broken API (or a proxy
// in front of it) reflects the token it received into the places the client
// quotes in its errors: a redirect's Location, a Link's host, relation and
// path. The errors, which the exporter logs and shows on /status, must
// carry none of it; and no other host may receive a request.
func TestTokenEchoedByServerNeverInErrors(t *testing.T) {
	var foreignHits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		foreignHits.Add(1)
		writeJSON(w, 200, `[]`)
	}))
	defer foreign.Close()
	foreignHost := strings.TrimPrefix(foreign.URL, "http://")

	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request, self, tok string)
	}{
		{"redirect Location path to another host", func(w http.ResponseWriter, r *http.Request, _, tok string) {
			http.Redirect(w, r, foreign.URL+"/steal/"+tok, http.StatusFound)
		}},
		{"redirect Location host", func(w http.ResponseWriter, r *http.Request, _, tok string) {
			http.Redirect(w, r, "http://"+strings.ToLower(tok)+".invalid/x", http.StatusTemporaryRedirect)
		}},
		{"same-host redirect to a path with the token, then 404", func(w http.ResponseWriter, r *http.Request, self, tok string) {
			if strings.Contains(r.URL.Path, tok) {
				writeJSON(w, 404, `{"message":"No agent found"}`)
				return
			}
			http.Redirect(w, r, self+"/organizations/o/agents/"+tok, http.StatusFound)
		}},
		{"Link host", func(w http.ResponseWriter, r *http.Request, _, tok string) {
			w.Header().Set("Link", `<http://`+strings.ToLower(tok)+`.`+foreignHost+`/x?page=2>; rel="next"`)
			writeJSON(w, 200, agentsJSON("a"))
		}},
		{"Link relation, then a page echoing the token", func(w http.ResponseWriter, r *http.Request, _, tok string) {
			if r.URL.Query().Get("page") == "2" {
				writeJSON(w, 404, `{"message":"no page `+tok+`"}`)
				return
			}
			w.Header().Set("Link", `<`+foreign.URL+`/x?page=2>; rel="next `+tok+`"`)
			writeJSON(w, 200, agentsJSON("a"))
		}},
		{"Link path on the same host, then 500", func(w http.ResponseWriter, r *http.Request, self, tok string) {
			if strings.Contains(r.URL.Path, tok) {
				writeJSON(w, 500, `{"message":"oops"}`)
				return
			}
			w.Header().Set("Link", `<`+self+`/organizations/o/agents/`+tok+`?page=2>; rel="next"`)
			writeJSON(w, 200, agentsJSON("a"))
		}},
		{"Content-Type", func(w http.ResponseWriter, r *http.Request, _, tok string) {
			w.Header().Set("Content-Type", "text/html; x="+tok)
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("<html>" + tok + "</html>"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tc.handle(w, r, srv.URL, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			}))
			defer srv.Close()
			c := newTestClient(t, srv.URL, func(cfg *Config) { cfg.MaxRetries = -1 })
			_, err := c.ListAgents(context.Background(), "o", ListOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(strings.ToLower(err.Error()), strings.ToLower(testToken)) {
				t.Fatalf("error contains the token: %v", err)
			}
			var ae *APIError
			if errors.As(err, &ae) && strings.Contains(ae.Path, testToken) {
				t.Fatalf("APIError.Path contains the token: %q", ae.Path)
			}
			var ue *url.Error
			if errors.As(err, &ue) && strings.Contains(ue.URL, testToken) {
				t.Fatalf("url.Error.URL contains the token: %q", ue.URL)
			}
		})
	}
	if n := foreignHits.Load(); n != 0 {
		t.Fatalf("another host received %d requests", n)
	}
}
