package collector_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// The handler answers in the text format, gzipped only when the scraper
// accepts gzip; the per-agent families are there either way.
func TestHandlerEncoding(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	mixedFleet(e.server, "acme")
	h, err := collector.NewHandler(collector.HandlerConfig{Fleet: e.exporter, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		acceptEncoding string
		gzipped        bool
	}{
		{"gzip", true},
		{"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"", false},
		{"identity", false},
		{"gzip;q=0", false},
		{"zstd", false},
	} {
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		if tt.acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", tt.acceptEncoding)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Accept-Encoding %q: Content-Type %q", tt.acceptEncoding, ct)
		}
		body := rec.Body.Bytes()
		if got := rec.Header().Get("Content-Encoding"); got != map[bool]string{true: "gzip"}[tt.gzipped] {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", tt.acceptEncoding, got)
			continue
		}
		if tt.gzipped {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("Accept-Encoding %q: %v", tt.acceptEncoding, err)
			}
			if body, err = io.ReadAll(zr); err != nil {
				t.Fatalf("Accept-Encoding %q: %v", tt.acceptEncoding, err)
			}
		}
		for _, want := range []string{
			"buildkite_up{organization=\"acme\"} 1\n",
			"# TYPE buildkite_agent_info gauge\n",
			"buildkite_agent_busy{buildkite_cluster=\"\",id=\"a1\",name=\"build-1\",organization=\"acme\",queue=\"build\"} 1\n",
		} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("Accept-Encoding %q: no %q in\n%s", tt.acceptEncoding, want, body)
			}
		}
	}
}

// The scrape's timeout header bounds the collection, and it is capped at
// the configured timeout.
func TestHandlerScrapeTimeout(t *testing.T) {
	tests := []struct {
		name, header string
		timeout      time.Duration
	}{
		{"the header's timeout", "0.3", time.Minute},
		{"capped at the configured timeout", "3600", 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults("acme")
			cfg.Timeout = time.Minute // the collector's own bound stays out of the way
			e := newEnv(t, cfg)
			e.server.PutAgent("acme", agentInQueue("t1", "build"))
			e.server.InjectFault(buildkitetest.Fault{Delay: 20 * time.Second})
			h, err := collector.NewHandler(collector.HandlerConfig{Fleet: e.exporter, Timeout: tt.timeout, TimeoutOffset: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", tt.header)
			rec := httptest.NewRecorder()
			began := time.Now()
			h.ServeHTTP(rec, req)
			if took := time.Since(began); took > 10*time.Second {
				t.Errorf("the scrape took %v", took)
			}
			if !bytes.Contains(rec.Body.Bytes(), []byte("buildkite_up{organization=\"acme\"} 0\n")) {
				t.Errorf("a timed-out collection must report buildkite_up 0:\n%s", rec.Body.Bytes())
			}
		})
	}
}
