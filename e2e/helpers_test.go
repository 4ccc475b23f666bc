//go:build e2e

// Package e2e runs the real binaries: the exporter against the fake
// Buildkite API (client/buildkitetest/cmd/buildkite-fake), driven over HTTP
// and, for the status page, from headless Chromium. It is the root package
// of the checks module in e2e/ (make e2e):
//
//	cd e2e && go test -tags e2e -count=1 .
//
// Every process a test starts is killed in t.Cleanup, and every wait is
// bounded.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// DemoToken is the token the fake accepts and the exporter is given.
const DemoToken = "demo-token"

// startTimeout bounds how long a process may take to listen.
const startTimeout = 30 * time.Second

// RepoRoot is the module root (this package's parent directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the source directory")
	}
	return filepath.Dir(filepath.Dir(file))
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{} // package -> binary
)

// Build compiles a main package of the module ("." or
// "./client/buildkitetest/cmd/buildkite-fake") and returns the binary's
// path. The binary goes into the caller's t.TempDir and is reused by later
// callers while that directory exists (the go build cache makes a rebuild
// cheap).
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := buildCache[pkg]; ok {
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
	}
	dir := t.TempDir()
	name := filepath.Base(pkg)
	if pkg == "." {
		name = "buildkite_exporter"
	}
	bin := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	buildCache[pkg] = bin
	return bin
}

// FreeAddr returns a 127.0.0.1 address with a port free at the time of the
// call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Process is a started binary; its output is kept for failure messages.
type Process struct {
	Name   string
	cmd    *exec.Cmd
	output *lockedBuffer
	done   chan struct{}
	err    error
}

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

// Output is what the process wrote so far (stdout and stderr).
func (p *Process) Output() string { return p.output.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start runs bin with args and env (added to a minimal environment) and
// kills it when the test ends: SIGTERM, then SIGKILL after 5 seconds. Its
// output is logged when the test failed.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	p := &Process{Name: name, cmd: cmd, output: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-p.done
			}
		}
		if t.Failed() {
			t.Logf("output of %s (%v):\n%s", name, p.err, p.Output())
		}
	})
	return p
}

// WaitListening waits until addr accepts connections, failing the test if
// the process exits first or timeout passes.
func WaitListening(t testing.TB, p *Process, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if p.Exited() {
			t.Fatalf("%s exited before listening on %s: %v\n%s", p.Name, addr, p.err, p.Output())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s after %s: %v\n%s", p.Name, addr, timeout, err, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// FakeOptions configure buildkite-fake; zero values get the defaults noted.
type FakeOptions struct {
	Orgs   string        // comma-separated; default "demo"
	Agents int           // mean agents per organization; default 30
	Seed   int64         // default 1
	Tick   time.Duration // how often the fleet changes; default 1h (it stays put)
	Token  string        // default DemoToken
	Extra  []string      // more flags
}

// Fake is a running buildkite-fake.
type Fake struct {
	*Process
	Addr string
	URL  string // the API base URL, http://addr/v2
}

// StartFake builds and starts buildkite-fake and waits until it listens.
func StartFake(t testing.TB, o FakeOptions) *Fake {
	t.Helper()
	if o.Orgs == "" {
		o.Orgs = "demo"
	}
	if o.Agents == 0 {
		o.Agents = 30
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Tick == 0 {
		o.Tick = time.Hour
	}
	if o.Token == "" {
		o.Token = DemoToken
	}
	bin := Build(t, "./client/buildkitetest/cmd/buildkite-fake")
	addr := FreeAddr(t)
	args := append([]string{
		"--listen", addr, "--org", o.Orgs, "--agents", strconv.Itoa(o.Agents),
		"--seed", strconv.FormatInt(o.Seed, 10), "--tick", o.Tick.String(),
	}, o.Extra...)
	p := Start(t, "buildkite-fake", bin, []string{"BUILDKITE_API_TOKEN=" + o.Token}, args...)
	WaitListening(t, p, addr, startTimeout)
	return &Fake{Process: p, Addr: addr, URL: "http://" + addr + "/v2"}
}

// Exporter is a running buildkite_exporter.
type Exporter struct {
	*Process
	Addr string
	URL  string // http://addr
}

// StartExporter builds and starts the exporter with the token in
// BUILDKITE_API_TOKEN, listening on a free port, and waits until it
// listens. args are its flags besides --web.listen-address (e.g.
// --buildkite.organization, --buildkite.api-url).
func StartExporter(t testing.TB, token string, args ...string) *Exporter {
	t.Helper()
	bin := Build(t, ".")
	addr := FreeAddr(t)
	var env []string
	if token != "" {
		env = append(env, "BUILDKITE_API_TOKEN="+token)
	}
	p := Start(t, "buildkite_exporter", bin, env, append([]string{"--web.listen-address", addr}, args...)...)
	WaitListening(t, p, addr, startTimeout)
	return &Exporter{Process: p, Addr: addr, URL: "http://" + addr}
}

// StartExporterForFake starts the exporter on fake's organizations.
func StartExporterForFake(t testing.TB, fake *Fake, orgs string, args ...string) *Exporter {
	t.Helper()
	return StartExporter(t, DemoToken, append([]string{"--buildkite.organization", orgs, "--buildkite.api-url", fake.URL}, args...)...)
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// Get fetches url and fails the test unless the status is want.
func Get(t testing.TB, url string, want int) string {
	t.Helper()
	return Do(t, mustRequest(t, url), want)
}

// Do sends req and fails the test unless the status is want.
func Do(t testing.TB, req *http.Request, want int) string {
	t.Helper()
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: HTTP %d, want %d\n%s", req.Method, req.URL, resp.StatusCode, want, body)
	}
	return string(body)
}

func mustRequest(t testing.TB, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Metrics parses a text exposition into families by name.
func Metrics(t testing.TB, exposition string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(exposition))
	if err != nil {
		t.Fatalf("parsing the exposition: %v", err)
	}
	return families
}

// Value returns the value of the family's series whose labels include all
// of labels; ok is false when there is no such series.
func Value(families map[string]*dto.MetricFamily, name string, labels map[string]string) (v float64, ok bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
metrics:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, want := range labels {
			if have[k] != want {
				continue metrics
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// LabelValues lists the distinct values of label in the family's series.
func LabelValues(families map[string]*dto.MetricFamily, name, label string) []string {
	seen := map[string]bool{}
	var out []string
	if f := families[name]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && !seen[l.GetValue()] {
					seen[l.GetValue()] = true
					out = append(out, l.GetValue())
				}
			}
		}
	}
	return out
}

// ChromiumPath is the browser the browser tests drive: $E2E_CHROMIUM, else
// Debian's /usr/bin/chromium. A missing browser fails the test (it is part
// of the test environment), naming the fix.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	path := os.Getenv("E2E_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		if lp, lerr := exec.LookPath("chromium"); lerr == nil && os.Getenv("E2E_CHROMIUM") == "" {
			return lp
		}
		t.Fatalf("headless Chromium is required for this test but %s is missing (%v): install it with `apt-get install -y chromium` (Debian/Ubuntu), or point E2E_CHROMIUM at a Chromium/Chrome binary", path, errors.Unwrap(err))
	}
	return path
}
