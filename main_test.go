package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// These tests run the built binary, as a user would.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func exporterBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "buildkite_exporter-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "buildkite_exporter")
		out, err := exec.Command("go", "build", "-o", binPath,
			"-ldflags", "-X github.com/prometheus/common/version.Version=9.8.7 -X github.com/prometheus/common/version.Revision=abc123",
			".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

const e2eToken = "bkua_e2e_secret_token_5f3c9a"

// syncBuffer collects a process' output safely while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type running struct {
	addr   string
	output *syncBuffer
	cmd    *exec.Cmd
}

// waitForOutput returns the process' output once it contains s, or at
// the timeout.
func (r *running) waitForOutput(s string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for {
		out := r.output.String()
		if strings.Contains(out, s) || time.Now().After(deadline) {
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settledOutput returns the process' output once it has not grown for
// 200 ms (at most 5 s): log lines of a scrape just answered may still be
// on their way through the pipe.
func (r *running) settledOutput() string {
	out := r.output.String()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		next := r.output.String()
		if next == out {
			break
		}
		out = next
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the exporter with args and env and waits until it listens.
func start(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	addr := freeAddr(t)
	r := &running{addr: addr, output: &syncBuffer{}}
	r.cmd = exec.Command(exporterBinary(t), append([]string{"--web.listen-address=" + addr}, args...)...)
	r.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	r.cmd.Stdout, r.cmd.Stderr = r.output, r.output
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return r
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the exporter did not listen on %s within 10s; output:\n%s", addr, r.output.String())
	return nil
}

func get(t *testing.T, c *http.Client, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func newFake(t *testing.T) *buildkitetest.Server {
	t.Helper()
	fake := buildkitetest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddToken(e2eToken, "read_agents")
	now := time.Now()
	for i, q := range []string{"build", "build", "deploy"} {
		id := fmt.Sprintf("0b461f65-e7be-4c80-888a-ef11d81fd97%d", i)
		fake.PutAgent("acme", buildkitetest.Agent{
			ID: id, Name: fmt.Sprintf("agent-%d", i), ConnectionState: "connected", Hostname: fmt.Sprintf("host-%d", i),
			Version: "3.80.0", Queue: q, MetaData: []string{"queue=" + q, "size=large"}, CreatedAt: now.Add(-time.Hour),
		})
	}
	return fake
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(exporterBinary(t), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	for _, want := range []string{"buildkite_exporter, version 9.8.7", "revision: abc123", "go version:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--version output lacks %q:\n%s", want, out)
		}
	}
}

// Startup errors are clear and early.
func TestStartupErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("  \n"), 0o600)
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no organization", []string{"BUILDKITE_API_TOKEN=x"}, nil, "no organization"},
		{"no token", nil, []string{"--buildkite.organization=acme"}, "no API token"},
		{"unreadable token file", nil, []string{"--buildkite.organization=acme", "--buildkite.token-file=" + filepath.Join(dir, "missing")}, "token-file"},
		{"empty token file", nil, []string{"--buildkite.organization=acme", "--buildkite.token-file=" + empty}, "token-file"},
		{"bad URL", []string{"BUILDKITE_API_TOKEN=x"}, []string{"--buildkite.organization=acme", "--buildkite.api-url=ftp://example"}, "api-url"},
		{"negative departure lookups", []string{"BUILDKITE_API_TOKEN=x"}, []string{"--buildkite.organization=acme", "--collector.departure-lookups=-1"}, "--collector.departure-lookups must not be negative"},
		{"zero timeout", []string{"BUILDKITE_API_TOKEN=x"}, []string{"--buildkite.organization=acme", "--buildkite.timeout=0s"}, "--buildkite.timeout must be positive"},
		{"empty agent token file", nil, []string{"--buildkite.agent-token-file=" + empty}, "--buildkite.agent-token-file: agent token file " + empty + ": empty"},
		{"missing agent token file", nil, []string{"--buildkite.agent-token-file=" + filepath.Join(dir, "missing")}, "--buildkite.agent-token-file: agent token file: stat "},
		{"queue metrics without organization", []string{"BUILDKITE_AGENT_TOKEN=x"}, []string{"--collector.queue-metrics"}, "--collector.queue-metrics needs an organization"},
		{"zero queue metrics interval", []string{"BUILDKITE_API_TOKEN=x"}, []string{"--buildkite.organization=acme", "--collector.queue-metrics-interval=0s"}, "--collector.queue-metrics-interval must be positive"},
		{"bad GraphQL URL", []string{"BUILDKITE_API_TOKEN=x"}, []string{"--buildkite.organization=acme", "--collector.queue-metrics", "--buildkite.graphql-url=ftp://example"}, "graphql-url"},
		{"unknown flag", []string{"BUILDKITE_API_TOKEN=x"}, []string{"--buildkite.token=x"}, "unknown long flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(exporterBinary(t), append([]string{"--web.listen-address=" + freeAddr(t)}, tt.args...)...)
			cmd.Env = tt.env
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("exited 0; output:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output lacks %q:\n%s", tt.want, out)
			}
		})
	}
}

// The flags reach the exporter: organizations from the environment,
// telemetry path, queue zero-fill, tags, agent details off, landing page.
func TestFlagsAndLandingPage(t *testing.T) {
	fake := newFake(t)
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken, "BUILDKITE_ORGANIZATION=acme", "BUILDKITE_API_URL=" + fake.URL},
		"--web.telemetry-path=/m", "--collector.queue=gpu", "--collector.tag=size", "--no-collector.agent-details")
	code, body := get(t, http.DefaultClient, "http://"+r.addr+"/m", nil)
	if code != 200 {
		t.Fatalf("GET /m: %d\n%s", code, body)
	}
	for _, want := range []string{
		`buildkite_up{organization="acme"} 1`,
		`buildkite_agents{buildkite_cluster="",connection_state="connected",organization="acme",queue="build"} 2`,
		`buildkite_agents{buildkite_cluster="",connection_state="connected",organization="acme",queue="gpu"} 0`,
		`buildkite_agents_by_tag{key="size",organization="acme",value="large"} 3`,
		`buildkite_exporter_api_requests_total{code="200",organization="acme"} 1`,
		`buildkite_exporter_build_info{`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/m lacks %s", want)
		}
	}
	if strings.Contains(body, "buildkite_agent_info") {
		t.Error("--no-collector.agent-details still exposes buildkite_agent_info")
	}
	code, body = get(t, http.DefaultClient, "http://"+r.addr+"/", nil)
	if code != 200 || !strings.Contains(body, `href="/m"`) {
		t.Errorf("landing page: %d, no link to /m:\n%s", code, body)
	}
}

// The scrape's own timeout bounds the collection.
func TestScrapeTimeoutHeader(t *testing.T) {
	fake := newFake(t)
	fake.InjectFault(buildkitetest.Fault{Delay: 20 * time.Second})
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme", "--buildkite.api-url="+fake.URL, "--web.timeout-offset=0.2s")
	began := time.Now()
	_, body := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", http.Header{"X-Prometheus-Scrape-Timeout-Seconds": {"1.5"}})
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("a scrape with a 1.5s timeout took %v", took)
	}
	if !strings.Contains(body, `buildkite_up{organization="acme"} 0`) {
		t.Errorf("a timed-out collection must report buildkite_up 0:\n%s", body)
	}
}

// A new token file swapped in (rename over it, as Kubernetes does with
// symlinks) is used without a restart; the token never reaches a log.
func TestTokenFileRotationAndHygiene(t *testing.T) {
	fake := newFake(t)
	dir := t.TempDir()
	// Kubernetes layout: token -> ..data/token, ..data -> a timestamped dir.
	writeVersion := func(name, token string) {
		os.MkdirAll(filepath.Join(dir, name), 0o700)
		if err := os.WriteFile(filepath.Join(dir, name, "token"), []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		os.Remove(tmp)
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	old := "bkua_old_revoked_token_77aa"
	writeVersion("v1", old)
	if err := os.Symlink("..data/token", filepath.Join(dir, "token")); err != nil {
		t.Fatal(err)
	}
	r := start(t, nil, "--buildkite.organization=acme", "--buildkite.api-url="+fake.URL,
		"--buildkite.token-file="+filepath.Join(dir, "token"), "--log.level=debug")

	_, body := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
	if !strings.Contains(body, `buildkite_up{organization="acme"} 0`) {
		t.Fatalf("an unknown token must give buildkite_up 0")
	}
	get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
	writeVersion("v2", e2eToken)
	_, body = get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
	if !strings.Contains(body, `buildkite_up{organization="acme"} 1`) {
		t.Fatalf("after rotation buildkite_up should be 1:\n%s", r.output.String())
	}
	// The log reaches the pipe when the scrape has been answered, maybe
	// not the test's buffer yet.
	logs := r.waitForOutput("collection recovered", 5*time.Second)
	if n := strings.Count(logs, "collection failed"); n != 1 {
		t.Errorf("two failing scrapes logged %d failures, want 1 (once per state change):\n%s", n, logs)
	}
	if !strings.Contains(logs, "unauthorized") {
		t.Errorf("the 401 is not explained in the log:\n%s", logs)
	}
	if !strings.Contains(logs, "collection recovered") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
	for _, secret := range []string{old, e2eToken} {
		if strings.Contains(logs, secret) || strings.Contains(body, secret) {
			t.Errorf("a token appears in the output at debug level")
		}
	}
}

// TLS and basic auth from --web.config.file: no credentials, 401.
func TestTLSAndBasicAuth(t *testing.T) {
	fake := newFake(t)
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	os.WriteFile(filepath.Join(dir, "cert.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), keyPEM, 0o600)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  prometheus: %s\n",
		filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), hash)
	os.WriteFile(filepath.Join(dir, "web.yml"), []byte(config), 0o600)
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme",
		"--buildkite.api-url="+fake.URL, "--web.config.file="+filepath.Join(dir, "web.yml"))

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	if code, _ := get(t, c, "https://"+r.addr+"/metrics", nil); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+r.addr+"/metrics", nil)
	req.SetBasicAuth("prometheus", "s3cret")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `buildkite_up{organization="acme"} 1`) {
		t.Errorf("with credentials: %d\n%s", resp.StatusCode, body)
	}
	if _, err := http.Get("http://" + r.addr + "/metrics"); err == nil {
		// Plain HTTP to a TLS port gets a 400 from Go's server, not metrics.
		code, body := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
		if code == 200 {
			t.Errorf("plain HTTP served metrics: %s", body)
		}
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// Agent tokens alone (no organization, no API token): the job backlog per
// queue from the Agent Metrics API, and no REST families.
func TestAgentTokenOnly(t *testing.T) {
	fake := newFake(t)
	const agentTok = "bkct_e2e_agent_token_9d81c2"
	fake.AddAgentToken(agentTok, "acme", "linux")
	fake.SetJobs("acme", "build", 4, 2, 1)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "agent-token")
	if err := os.WriteFile(tokenFile, []byte(agentTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, setup := range map[string]struct {
		env  []string
		args []string
	}{
		"env":  {[]string{"BUILDKITE_AGENT_TOKEN=" + agentTok}, nil},
		"file": {nil, []string{"--buildkite.agent-token-file=" + tokenFile}},
	} {
		t.Run(name, func(t *testing.T) {
			r := start(t, setup.env, append([]string{"--buildkite.agent-api-url=" + fake.AgentURL, "--log.level=debug"}, setup.args...)...)
			code, body := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
			if code != 200 {
				t.Fatalf("GET /metrics: %d\n%s", code, body)
			}
			for _, want := range []string{
				`buildkite_agent_metrics_up{buildkite_cluster="linux",organization="acme"} 1`,
				`buildkite_queue_jobs{buildkite_cluster="linux",organization="acme",queue="build",state="scheduled"} 4`,
				`buildkite_queue_jobs{buildkite_cluster="linux",organization="acme",queue="build",state="running"} 2`,
				`buildkite_queue_jobs{buildkite_cluster="linux",organization="acme",queue="build",state="waiting"} 1`,
				// build and deploy have agents in the fake: deploy is zero-filled.
				`buildkite_queue_jobs{buildkite_cluster="linux",organization="acme",queue="deploy",state="waiting"} 0`,
				`buildkite_exporter_api_requests_total{code="200",organization="acme"} 1`,
			} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
			if strings.Contains(body, "buildkite_up{") || strings.Contains(body, "buildkite_agents{") {
				t.Error("REST families without an organization")
			}
			if code, _ := get(t, http.DefaultClient, "http://"+r.addr+"/status", nil); code != 200 {
				t.Errorf("/status without organizations: %d", code)
			}
			if out := r.output.String(); strings.Contains(out, agentTok) || strings.Contains(body, agentTok) {
				t.Error("the agent token appears in the output at debug level")
			}
		})
	}
}

// /metrics answers in the text format, gzipped only when the scraper
// accepts gzip, and the per-agent families written as text are there
// either way.
func TestMetricsEncoding(t *testing.T) {
	fake := newFake(t)
	r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme", "--buildkite.api-url="+fake.URL)
	raw := &http.Client{Transport: &http.Transport{DisableCompression: true}} // shows the body as sent
	for _, tt := range []struct {
		acceptEncoding string
		gzipped        bool
	}{
		{"gzip", true},
		{"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"", false},
		{"identity", false},
		{"gzip;q=0", false},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://"+r.addr+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", tt.acceptEncoding)
		}
		resp, err := raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("Accept-Encoding %q: Content-Type %q", tt.acceptEncoding, ct)
		}
		if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tt.gzipped {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", tt.acceptEncoding, resp.Header.Get("Content-Encoding"))
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
			`buildkite_up{organization="acme"} 1`,
			`buildkite_agents_busy{buildkite_cluster="",organization="acme",queue="build"} 0`,
			"# TYPE buildkite_agent_info gauge\n",
			`buildkite_agent_info{arch="",buildkite_cluster="",connection_state="connected",hostname="host-2",id="0b461f65-e7be-4c80-888a-ef11d81fd972",ip_address="",name="agent-2",organization="acme",os="",queue="deploy",version="3.80.0"} 1`,
			`buildkite_agent_meta_data{buildkite_cluster="",id="0b461f65-e7be-4c80-888a-ef11d81fd970",key="size",name="agent-0",organization="acme",queue="build",value="large"} 1`,
		} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("Accept-Encoding %q: no %q in\n%s", tt.acceptEncoding, want, body)
			}
		}
	}
}

var logfmtLineRE = regexp.MustCompile(`^ts=\S+ level=(debug|info|warn|error) caller=\S+:\d+ msg=`)

// The exporter's lines and exporter-toolkit's look alike, in logfmt and
// in JSON: one time key (ts), then level, caller and msg; booleans stay
// booleans in JSON.
func TestLogFormat(t *testing.T) {
	fake := newFake(t)
	for _, format := range []string{"logfmt", "json"} {
		t.Run(format, func(t *testing.T) {
			r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, "--buildkite.organization=acme",
				"--buildkite.api-url="+fake.URL, "--log.level=debug", "--log.format="+format)
			r.waitForOutput("TLS is disabled", 5*time.Second)
			get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
			lines := strings.Split(strings.TrimSpace(r.settledOutput()), "\n")
			msgs := map[string]bool{}
			for _, line := range lines {
				if format == "logfmt" {
					if !logfmtLineRE.MatchString(line) || strings.Contains(line, " time=") {
						t.Errorf("not ts, level, caller, msg: %s", line)
					}
					msgs[strings.Trim(strings.SplitN(strings.SplitN(line, "msg=", 2)[1], " ", 2)[0], `"`)] = true
					continue
				}
				var fields map[string]any
				if err := json.Unmarshal([]byte(line), &fields); err != nil {
					t.Errorf("not JSON: %s", line)
					continue
				}
				for _, key := range []string{"ts", "level", "caller", "msg"} {
					if _, ok := fields[key].(string); !ok {
						t.Errorf("no %s: %s", key, line)
					}
				}
				if _, ok := fields["time"]; ok {
					t.Errorf("a second time key: %s", line)
				}
				for _, key := range []string{"http2", "job_backlog"} {
					if v, ok := fields[key]; ok {
						if _, isBool := v.(bool); !isBool {
							t.Errorf("%s is not a JSON boolean: %s", key, line)
						}
					}
				}
				msg, _ := fields["msg"].(string)
				msgs[msg] = true
			}
			// startup (the exporter's, the toolkit's) and a scrape
			for _, want := range []string{"starting", "Listening", "TLS", "collection"} {
				found := false
				for msg := range msgs {
					found = found || strings.HasPrefix(msg, want)
				}
				if !found {
					t.Errorf("no line whose msg starts with %q in:\n%s", want, strings.Join(lines, "\n"))
				}
			}
		})
	}
}

// A token file whose content cannot be a token (here: two tokens, one
// line each) stops the exporter at startup, naming the file and the
// problem; rotated in later, it fails the scrape with the same words. The
// tokens reach no output.
func TestBadTokenFileContent(t *testing.T) {
	fake := newFake(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	const second = "bkua_second_pasted_token_31c0"
	twoLines := e2eToken + "\n" + second + "\n"
	if err := os.WriteFile(tokenFile, []byte(twoLines), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--web.listen-address=" + freeAddr(t), "--buildkite.organization=acme",
		"--buildkite.api-url=" + fake.URL, "--buildkite.token-file=" + tokenFile, "--log.level=debug"}
	// Bounded: an exporter that starts anyway would otherwise run on.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, exporterBinary(t), args...).CombinedOutput()
	want := "--buildkite.token-file: API token file " + tokenFile + ": has more than one line"
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("startup with a two-line token file: %v, output lacks %q:\n%s", err, want, out)
	}

	if err := os.WriteFile(tokenFile, []byte(e2eToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, nil, args[1:]...)
	if _, body := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil); !strings.Contains(body, `buildkite_up{organization="acme"} 1`) {
		t.Fatalf("a good token file: no buildkite_up 1\n%s", r.output.String())
	}
	if err := os.WriteFile(tokenFile, []byte(twoLines), 0o600); err != nil {
		t.Fatal(err)
	}
	_, body := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
	if !strings.Contains(body, `buildkite_up{organization="acme"} 0`) {
		t.Errorf("a two-line token file rotated in: no buildkite_up 0")
	}
	logs := r.waitForOutput("has more than one line", 5*time.Second)
	if !strings.Contains(logs, "API token file "+tokenFile+": has more than one line") {
		t.Errorf("the scrape's failure does not name the file and the problem:\n%s", logs)
	}
	for _, secret := range []string{e2eToken, second} {
		if strings.Contains(string(out)+logs+body, secret) {
			t.Errorf("a token appears in the output")
		}
	}
}

// The web server's timeouts: headers within 10s, keep-alive connections
// idle at most --web.idle-timeout, and a write timeout that leaves a scrape
// its whole --buildkite.timeout plus 30s to write /metrics.
func TestServerTimeouts(t *testing.T) {
	for _, tt := range []struct {
		args              []string
		idle, writeWithin time.Duration
	}{
		{nil, 60 * time.Second, 60 * time.Second},
		{[]string{"--buildkite.timeout=2m", "--web.idle-timeout=5s"}, 5 * time.Second, 150 * time.Second},
	} {
		var cfg config
		if _, done := parse(newApp(&cfg, io.Discard), tt.args); done {
			t.Fatalf("%v: not parsed", tt.args)
		}
		s := newServer(&cfg, http.NotFoundHandler())
		if s.ReadHeaderTimeout != 10*time.Second || s.IdleTimeout != tt.idle || s.WriteTimeout != tt.writeWithin {
			t.Errorf("%v: read header %v, idle %v, write %v; want 10s, %v, %v",
				tt.args, s.ReadHeaderTimeout, s.IdleTimeout, s.WriteTimeout, tt.idle, tt.writeWithin)
		}
	}
}

// The listeners exporter-toolkit would open are still there, each under
// the connection limit: every --web.listen-address, and with
// --web.systemd-socket the sockets systemd passes.
func TestListeners(t *testing.T) {
	fake := newFake(t)
	env := []string{"BUILDKITE_API_TOKEN=" + e2eToken}
	second := freeAddr(t)
	r := start(t, env, "--buildkite.organization=acme", "--buildkite.api-url="+fake.URL, "--web.listen-address="+second)
	for _, addr := range []string{r.addr, second} {
		if code, _ := get(t, http.DefaultClient, "http://"+addr+"/", nil); code != 200 {
			t.Errorf("GET / on %s: %d", addr, code)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	socket, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer socket.Close()
	// systemd names the process the sockets are for by LISTEN_PID.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, exporterBinary(t),
		"--web.systemd-socket", "--buildkite.organization=acme", "--buildkite.api-url="+fake.URL, "--web.max-connections=1")
	cmd.Env = append(env, "LISTEN_FDS=1")
	cmd.ExtraFiles = []*os.File{socket}
	output := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = output, output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	held := servedConn(t, l.Addr().String())
	defer held.Close()
	over, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err == nil {
		defer over.Close()
		if answered(over) || !closedByServer(over, 5*time.Second) {
			t.Errorf("the systemd socket is not under --web.max-connections=1")
		}
	}
	if !strings.Contains(output.String(), "systemd") {
		t.Errorf("no line says the systemd sockets are used:\n%s", output.String())
	}
}
