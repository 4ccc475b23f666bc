package main

// Security tests of the built binary: the API token never shows up in any
// output, whatever the API (or something pretending to be it) answers;
// only the API host ever receives it; a token file others can read draws a
// warning. TLS and basic auth are TestTLSAndBasicAuth in main_test.go.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// hostileAPI is the fake behind a middleware that, in its current mode,
// answers as a broken, hostile or misrouted API would, echoing the token it
// received wherever the exporter might quote it.
type hostileAPI struct {
	fake    *buildkitetest.Server
	srv     *httptest.Server
	foreign *httptest.Server
	mode    atomic.Pointer[string]

	foreignHits, foreignWithToken atomic.Int32
}

func newHostileAPI(t *testing.T) *hostileAPI {
	t.Helper()
	h := &hostileAPI{fake: newFake(t)}
	ok := "ok"
	h.mode.Store(&ok)
	h.foreign = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.foreignHits.Add(1)
		if strings.Contains(r.Header.Get("Authorization"), e2eToken) || strings.Contains(r.URL.String(), e2eToken) {
			h.foreignWithToken.Add(1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[]`))
	}))
	t.Cleanup(h.foreign.Close)
	next := h.fake.Fake.Handler()
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		jsonAnswer := func(code int, body string) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(code)
			w.Write([]byte(body))
		}
		switch *h.mode.Load() {
		case "401":
			jsonAnswer(401, `{"message":"Authentication required. Your token `+tok+` is not valid"}`)
		case "403":
			jsonAnswer(403, `{"message":"Your access token `+tok+` doesn't have the read_agents scope"}`)
		case "404":
			jsonAnswer(404, `{"message":"No organization found for `+tok+`"}`)
		case "429":
			w.Header().Set("RateLimit-Limit", "200")
			w.Header().Set("RateLimit-Remaining", "-3")
			w.Header().Set("RateLimit-Reset", "1")
			jsonAnswer(429, `{"message":"You have exceeded your API rate limit, `+tok+`.","scope":"rest","limit":200,"current":203,"reset":1}`)
		case "500":
			jsonAnswer(500, `{"message":"internal error: token=`+tok+`"}`)
		case "502":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprintf(w, "<html><body><h1>502 Bad Gateway</h1><pre>Authorization: Bearer %s</pre></body></html>", tok)
		case "503":
			w.Header().Set("Content-Type", "text/plain; token="+tok)
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(tok))
		case "content type":
			w.Header().Set("Content-Type", "text/html; charset="+tok)
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("<html>" + tok + "</html>"))
		case "malformed":
			jsonAnswer(200, `[{"id":"`+tok+`","name":`+tok+`}]`)
		case "foreign link":
			w.Header().Set("Link", `<`+h.foreign.URL+`/v2/`+tok+`?page=2&token=`+tok+`>; rel="next", <http://`+strings.ToLower(tok)+`.example/?page=3>; rel="last"`)
			next.ServeHTTP(w, r)
		case "foreign redirect":
			http.Redirect(w, r, h.foreign.URL+"/steal/"+tok+"?token="+tok, http.StatusFound)
		case "redirect to a host named after the token":
			http.Redirect(w, r, "http://"+strings.ToLower(tok)+".example/v2/organizations/acme/agents", http.StatusTemporaryRedirect)
		case "same-host redirect":
			if strings.Contains(r.URL.Path, tok) {
				jsonAnswer(404, `{"message":"No agent found"}`)
				return
			}
			http.Redirect(w, r, "/v2/organizations/acme/agents/"+tok, http.StatusFound)
		case "slow":
			time.Sleep(2 * time.Second)
			next.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hostileAPI) set(mode string) { h.mode.Store(&mode) }

// TestTokenNeverInAnyOutput runs the binary at debug level through success
// and every failure a hostile API can produce, reading every page after
// each, and greps all of it for the token.
func TestTokenNeverInAnyOutput(t *testing.T) {
	for _, format := range []string{"logfmt", "json"} {
		t.Run(format, func(t *testing.T) {
			api := newHostileAPI(t)
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte(e2eToken+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			r := start(t, nil, "--buildkite.organization=acme", "--buildkite.api-url="+api.srv.URL+"/v2",
				"--buildkite.token-file="+tokenFile, "--log.level=debug", "--log.format="+format, "--collector.departure-lookups=3")
			var pages strings.Builder
			read := func(path string, header http.Header) string {
				_, body := get(t, http.DefaultClient, "http://"+r.addr+path, header)
				fmt.Fprintf(&pages, "== %s\n%s\n", path, body)
				return body
			}
			scrapeAll := func() string {
				body := read("/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1.5"}})
				read("/status", nil)
				read("/status?format=json", nil)
				read("/", nil)
				read("/no-such-page", nil)
				return body
			}
			modes := []string{"ok", "401", "403", "404", "429", "500", "502", "503", "content type", "malformed",
				"foreign link", "foreign redirect", "redirect to a host named after the token", "same-host redirect", "slow", "ok"}
			for _, mode := range modes {
				api.set(mode)
				body := scrapeAll()
				want := `buildkite_up{organization="acme"} 0`
				if mode == "ok" || mode == "429" {
					// A 429 serves the latest complete result: the first "ok".
					want = `buildkite_up{organization="acme"} 1`
				}
				if !strings.Contains(body, want) {
					t.Errorf("%s: /metrics lacks %s", mode, want)
				}
				if mode == "429" {
					// Inside the window nothing is sent; then it passes.
					before := len(api.fake.Requests())
					scrapeAll()
					if n := len(api.fake.Requests()) - before; n != 0 {
						t.Errorf("a scrape inside the 429 window reached the API %d times", n)
					}
					time.Sleep(1100 * time.Millisecond)
				}
			}
			logs := r.settledOutput()
			for what, text := range map[string]string{"the logs": logs, "the pages": pages.String()} {
				if strings.Contains(strings.ToLower(text), strings.ToLower(e2eToken)) {
					i := strings.Index(strings.ToLower(text), strings.ToLower(e2eToken))
					t.Errorf("the token appears in %s: ...%s...", what, text[max(0, i-200):min(len(text), i+100)])
				}
			}
			for _, want := range []string{"unauthorized", "read_agents", "rate limited", "server error", "unsafe pagination link", "[REDACTED]"} {
				if !strings.Contains(logs, want) {
					t.Errorf("the logs never say %q", want)
				}
			}
			if n := api.foreignHits.Load(); n != 0 {
				t.Errorf("another host received %d requests (%d with the token)", n, api.foreignWithToken.Load())
			}
		})
	}
}

// TestTokenOnlyToTheAPIHost: whatever links and redirects say, every
// request that carries the token goes to the configured API host, and the
// other host's recorder sees nothing.
func TestTokenOnlyToTheAPIHost(t *testing.T) {
	api := newHostileAPI(t)
	var seen sync.Map // host -> true, for requests with the token
	var hits atomic.Int32
	recorder := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		seen.Store(r.Host, true)
		api.srv.Config.Handler.ServeHTTP(w, r)
	}))
	defer recorder.Close()
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme", "--buildkite.api-url="+recorder.URL+"/v2")
	for _, mode := range []string{"ok", "foreign link", "foreign redirect", "redirect to a host named after the token", "same-host redirect", "ok"} {
		api.set(mode)
		get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
	}
	if hits.Load() == 0 {
		t.Fatal("the API host received nothing")
	}
	seen.Range(func(k, _ any) bool {
		if k.(string) != strings.TrimPrefix(recorder.URL, "http://") {
			t.Errorf("a request reached the recorder for host %v", k)
		}
		return true
	})
	if n := api.foreignHits.Load(); n != 0 {
		t.Errorf("another host received %d requests (%d with the token)", n, api.foreignWithToken.Load())
	}
}

// TestTokenFileWorldReadableWarning: a token file others can read draws a
// warning at startup (naming the file, not its content); 0600 draws none.
func TestTokenFileWorldReadableWarning(t *testing.T) {
	fake := newFake(t)
	for _, tc := range []struct {
		mode os.FileMode
		warn bool
	}{{0o644, true}, {0o604, true}, {0o640, false}, {0o600, false}, {0o400, false}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(e2eToken), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, tc.mode); err != nil {
				t.Fatal(err)
			}
			r := start(t, nil, "--buildkite.organization=acme", "--buildkite.api-url="+fake.URL, "--buildkite.token-file="+file)
			get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
			logs := r.output.String()
			warned := strings.Contains(logs, "readable by other users")
			if warned != tc.warn {
				t.Errorf("mode %v: warned %v, want %v:\n%s", tc.mode, warned, tc.warn, logs)
			}
			if tc.warn && (!strings.Contains(logs, "level=warn") || !strings.Contains(logs, file)) {
				t.Errorf("the warning is not a warn-level line naming the file:\n%s", logs)
			}
			if strings.Contains(logs, e2eToken) {
				t.Error("the token appears in the logs")
			}
		})
	}
}

var goroutinesRE = regexp.MustCompile(`(?m)^go_goroutines (\d+)`)

func binaryGoroutines(t *testing.T, addr string) int {
	t.Helper()
	_, body := get(t, http.DefaultClient, "http://"+addr+"/metrics", nil)
	m := goroutinesRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no go_goroutines in /metrics")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestConcurrentScrapesOfTheBinary: 100 scrapes at once over HTTP share
// one collection, and the process' goroutines come back down.
func TestConcurrentScrapesOfTheBinary(t *testing.T) {
	fake := newFake(t)
	// 100 scrapes plus this test's other connections: above the default
	// --web.max-connections of 100, which would close some of them.
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme", "--buildkite.api-url="+fake.URL,
		"--web.max-connections=110")
	before := binaryGoroutines(t, r.addr)
	fake.InjectFault(buildkitetest.Fault{Delay: 300 * time.Millisecond})
	fake.ResetRequests()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}, Timeout: 20 * time.Second}
	defer client.Transport.(*http.Transport).CloseIdleConnections()
	var wg sync.WaitGroup
	var up1 atomic.Int32
	startGate := make(chan struct{})
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			resp, err := client.Get("http://" + r.addr + "/metrics")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var b strings.Builder
			buf := make([]byte, 32<<10)
			for {
				n, err := resp.Body.Read(buf)
				b.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if strings.Contains(b.String(), `buildkite_up{organization="acme"} 1`) {
				up1.Add(1)
			}
		}()
	}
	close(startGate)
	wg.Wait()
	if n := up1.Load(); n != 100 {
		t.Errorf("%d of 100 concurrent scrapes had buildkite_up 1", n)
	}
	// The fleet is one page: 100 scrapes within one 300 ms collection.
	if n := len(fake.Requests()); n > 3 {
		t.Errorf("100 concurrent scrapes made %d API requests, want at most 3 (shared)", n)
	}
	client.Transport.(*http.Transport).CloseIdleConnections()
	var after int
	for deadline := time.Now().Add(5 * time.Second); ; {
		after = binaryGoroutines(t, r.addr)
		if after <= before+10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after > before+10 {
		t.Errorf("the exporter's goroutines: %d before, %d after 100 concurrent scrapes", before, after)
	}
}

// keepAlive opens a connection to addr, gets / on it and leaves it open,
// idle, as a keep-alive client would. It fails the test if / is not
// answered.
func keepAlive(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if !answered(c) {
		t.Fatalf("GET / on a new connection was not answered")
	}
	return c
}

// answered sends GET / on c and reports whether a 200 came back (within
// 10 s) with the connection kept alive.
func answered(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: exporter\r\n\r\n"); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK && !resp.Close
}

// closedByServer reports whether the server closes c (a read ends without
// data) within wait.
func closedByServer(c net.Conn, wait time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(wait))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	return n == 0 && err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// Idle keep-alive connections are closed by the server after
// --web.idle-timeout (60s by default; 1s here so the test takes seconds).
// Without it they stayed open for as long as the clients kept them.
func TestIdleConnectionsClosed(t *testing.T) {
	fake := newFake(t)
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme",
		"--buildkite.api-url="+fake.URL, "--web.idle-timeout=1s")
	const n = 50
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = keepAlive(t, r.addr)
	}
	closed := make(chan bool, n)
	for _, c := range conns {
		go func() { closed <- closedByServer(c, 15*time.Second) }()
	}
	open := 0
	for range conns {
		if !<-closed {
			open++
		}
	}
	if open > 0 {
		t.Errorf("%d of %d idle keep-alive connections still open 15s after a 1s idle timeout", open, n)
	}
}

// Connections over --web.max-connections are closed as they arrive, not
// left waiting unanswered, and the slot of a closed connection serves the
// next one.
func TestConnectionLimit(t *testing.T) {
	fake := newFake(t)
	const limit = 5
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme",
		"--buildkite.api-url="+fake.URL, "--web.max-connections="+strconv.Itoa(limit))
	var held []net.Conn
	for i := 0; i < limit; i++ {
		held = append(held, servedConn(t, r.addr))
	}
	for i := 0; i < 3; i++ {
		over, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
		if err != nil {
			continue // refused outright: fine too
		}
		if answered(over) {
			t.Errorf("connection %d over the limit of %d was served", limit+i+1, limit)
		}
		if !closedByServer(over, 5*time.Second) {
			t.Errorf("connection %d over the limit of %d left open", limit+i+1, limit)
		}
		over.Close()
	}
	if out := r.waitForOutput("connection limit reached", 5*time.Second); !strings.Contains(out, "connection limit reached") {
		t.Errorf("no log line says the limit was reached:\n%s", out)
	}
	held[0].Close()
	servedConn(t, r.addr)
}

// servedConn returns a keep-alive connection to addr on which GET / was
// answered, trying up to 50 times: a slot is free only once the server has
// read the close of the connection that held it (start's readiness probe,
// say).
func servedConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	for i := 0; i < 50; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if answered(c) {
			t.Cleanup(func() { c.Close() })
			return c
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no connection served in 50 tries")
	return nil
}

// TestHugeResponseHeadersFailTheScrape: response headers over the 1 MiB
// bound fail the scrape (up 0) at a bounded cost in requests, instead of
// being read into memory (9 pages of a 9 MB Link each took the process to
// 1.15 GB and reported up 1); headers under the bound still work, and the
// exporter recovers once the headers are back to normal.
func TestHugeResponseHeadersFailTheScrape(t *testing.T) {
	fake := newFake(t)
	var padding atomic.Int64 // bytes of one extra header on agent listings
	var listings atomic.Int32
	next := fake.Fake.Handler()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/agents") {
			listings.Add(1)
			if n := padding.Load(); n > 0 {
				w.Header().Set("X-Padding", strings.Repeat("x", int(n)))
			}
		}
		next.ServeHTTP(w, r)
	}))
	defer api.Close()
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme", "--buildkite.api-url="+api.URL+"/v2")
	for _, tc := range []struct {
		name    string
		padding int64
		up      string
	}{
		{"no padding", 0, "1"},
		{"900 KiB of headers", 900 << 10, "1"},
		{"headers just over 1 MiB", 1<<20 + 1, "0"},
		{"9 MB of headers", 9 << 20, "0"},
		{"back to normal", 0, "1"},
	} {
		padding.Store(tc.padding)
		listings.Store(0)
		_, body := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
		if want := `buildkite_up{organization="acme"} ` + tc.up; !strings.Contains(body, want) {
			t.Errorf("%s: /metrics lacks %s", tc.name, want)
		}
		// One page; a failed one is retried at most twice.
		if n := listings.Load(); n < 1 || n > 3 {
			t.Errorf("%s: %d listing requests, want 1 to 3", tc.name, n)
		}
	}
	if logs := r.settledOutput(); !strings.Contains(logs, "server response headers exceeded") {
		t.Errorf("the logs never name the header bound:\n%s", logs)
	}
}
