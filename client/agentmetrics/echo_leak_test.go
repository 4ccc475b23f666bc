package agentmetrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRedirectEchoingTheTokenIsRedacted: a server that reflects the agent
// token into a redirect's Location (path or host) must not get it into the
// error the exporter logs, and the other host receives nothing.
func TestRedirectEchoingTheTokenIsRedacted(t *testing.T) {
	var foreignHits atomic.Int32
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { foreignHits.Add(1) }))
	defer foreign.Close()
	for name, target := range map[string]func(tok string) string{
		"path": func(tok string) string { return foreign.URL + "/steal/" + tok },
		"host": func(tok string) string { return "http://" + strings.ToLower(tok) + ".invalid/x" },
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Token ")
				http.Redirect(w, r, target(tok), http.StatusFound)
			}))
			defer srv.Close()
			_, err := newClient(t, srv.URL+"/v3", nil).Metrics(context.Background())
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(strings.ToLower(err.Error()), strings.ToLower(agentToken)) {
				t.Fatalf("error contains the token: %v", err)
			}
		})
	}
	if n := foreignHits.Load(); n != 0 {
		t.Fatalf("another host received %d requests", n)
	}
}
