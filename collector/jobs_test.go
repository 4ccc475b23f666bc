package collector_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/agentmetrics"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// Reused from collector_test.go: update, epoch, exposition,
// lineDiff.

const (
	linuxToken = "bkct_linux_agent_token_0123"
	macToken   = "bkct_mac_agent_token_4567"
)

type jobsEnv struct {
	t        *testing.T
	server   *buildkitetest.Server
	clock    *buildkitetest.Clock
	exporter *collector.JobsExporter
}

// newJobsEnv starts a fake and a jobs exporter polling it with tokens; cfg's
// zero fields get the flags' defaults.
func newJobsEnv(t *testing.T, cfg collector.JobsConfig, tokens ...string) *jobsEnv {
	t.Helper()
	server := buildkitetest.NewServer()
	t.Cleanup(server.Close)
	clock := buildkitetest.NewClock(epoch)
	server.SetClock(clock.Now)
	var sources []collector.JobsSource
	for _, tok := range tokens {
		api, err := agentmetrics.New(agentmetrics.Config{BaseURL: server.AgentURL, Token: client.StaticToken(tok)})
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, collector.JobsSource{Name: "token-" + tok[5:10], API: api})
	}
	if cfg.QueueRetention == 0 {
		cfg.QueueRetention = 24 * time.Hour
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	cfg.Now = clock.Now
	exporter, err := collector.NewJobsExporter(sources, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &jobsEnv{t: t, server: server, clock: clock, exporter: exporter}
}

// golden collects once and compares with testdata/name.metrics.
func (e *jobsEnv) golden(name string) {
	e.t.Helper()
	e.goldenOf(name, e.exporter)
}

func (e *jobsEnv) goldenOf(name string, c prometheus.Collector) {
	e.t.Helper()
	golden(e.t, name, c)
}

// agentMetricsRequests counts the requests the fake got on /v3.
func (e *jobsEnv) agentMetricsRequests() int {
	n := 0
	for _, r := range e.server.Requests() {
		if strings.HasPrefix(r.Path, "/v3/") {
			n++
		}
	}
	return n
}

// linuxFleet: build has a busy and an idle agent and a backlog; deploy has
// one idle agent and nothing to do.
func linuxFleet(s *buildkitetest.Server) {
	s.AddAgentToken(linuxToken, "acme", "linux")
	s.PutAgent("acme", buildkitetest.Agent{ID: "a1", Queue: "build", Job: &buildkitetest.Job{ID: "j1", State: "running"}})
	s.PutAgent("acme", buildkitetest.Agent{ID: "a2", Queue: "build"})
	s.PutAgent("acme", buildkitetest.Agent{ID: "a3", MetaData: []string{"queue=deploy"}})
	s.SetJobs("acme", "build", 7, 1, 2)
}

func TestJobsTwoQueues(t *testing.T) {
	e := newJobsEnv(t, collector.JobsConfig{}, linuxToken)
	linuxFleet(e.server)
	e.golden("jobs_two_queues")
}

// --collector.queue linux/gpu zero-fills gpu for the linux token only.
func TestJobsQueueVanishedAndExpired(t *testing.T) {
	e := newJobsEnv(t, collector.JobsConfig{QueueRetention: time.Hour, Queues: []string{"linux/gpu", "gpu", "macos/gpu"}}, linuxToken)
	linuxFleet(e.server)
	e.server.SetJobs("acme", "deploy", 1, 0, 0)
	e.exporter.Collection(context.Background())

	// deploy's agent and jobs go: the queue is no longer in the answer.
	e.server.RemoveAgent("acme", "a3")
	e.server.SetJobs("acme", "deploy", 0, 0, 0)
	e.clock.Advance(time.Minute)
	e.golden("jobs_queue_vanished")

	e.clock.Advance(time.Hour)
	e.golden("jobs_queue_expired")
}

func TestJobsUnauthorized(t *testing.T) {
	e := newJobsEnv(t, collector.JobsConfig{}, linuxToken)
	e.golden("jobs_unauthorized") // the fake does not know the token yet

	// Known, then revoked: up 0 under the names of the last good answer.
	linuxFleet(e.server)
	e.clock.Advance(time.Minute)
	if s := e.exporter.Collection(context.Background()); !s[0].OK() {
		t.Fatal(s[0].Err)
	}
	e.server.InjectFault(buildkitetest.Fault{Status: 401, Body: `{"message":"Unauthorized"}`})
	e.clock.Advance(time.Minute)
	e.golden("jobs_revoked")
	for _, s := range e.exporter.Latest() {
		if strings.Contains(s.Err.Error(), linuxToken) {
			t.Errorf("the token is in the error: %v", s.Err)
		}
	}
}

// Within Buildkite's Poll-Duration no request is made: the last answer is
// served. After it, the next scrape polls again.
func TestJobsPollDuration(t *testing.T) {
	e := newJobsEnv(t, collector.JobsConfig{}, linuxToken)
	linuxFleet(e.server)
	e.server.SetAgentMetricsPollDuration(30)
	first := e.exporter.Collection(context.Background())[0]
	e.server.SetJobs("acme", "build", 0, 0, 9)

	e.clock.Advance(29 * time.Second)
	again := e.exporter.Collection(context.Background())[0]
	if n := e.agentMetricsRequests(); n != 1 || again != first {
		t.Errorf("within the poll duration: %d requests (want 1), same snapshot %v", n, again == first)
	}
	e.clock.Advance(time.Second)
	next := e.exporter.Collection(context.Background())[0]
	if n := e.agentMetricsRequests(); n != 2 || next == first || next.PollDuration != 30*time.Second {
		t.Errorf("after the poll duration: %d requests (want 2), poll duration %v", n, next.PollDuration)
	}
	if got := next.Queues[0]; got.Queue != "build" || got.Waiting != 9 {
		t.Errorf("new answer not used: %+v", got)
	}

	// MinInterval, when longer, wins.
	e2 := newJobsEnv(t, collector.JobsConfig{MinInterval: time.Minute}, linuxToken)
	linuxFleet(e2.server)
	e2.exporter.Collection(context.Background())
	e2.clock.Advance(59 * time.Second)
	e2.exporter.Collection(context.Background())
	if n := e2.agentMetricsRequests(); n != 1 {
		t.Errorf("within --collector.min-interval: %d requests, want 1", n)
	}
}

func TestJobsTwoClusters(t *testing.T) {
	e := newJobsEnv(t, collector.JobsConfig{}, linuxToken, macToken)
	linuxFleet(e.server)
	e.server.AddAgentToken(macToken, "acme-mac", "mac")
	e.server.PutAgent("acme-mac", buildkitetest.Agent{ID: "m1", Queue: "macos", Job: &buildkitetest.Job{ID: "jm", State: "running"}})
	e.server.SetJobs("acme-mac", "macos", 0, 1, 4)
	e.golden("jobs_two_clusters")
}

// A scrape's deadline bounds the poll: up 0 at once, no job series.
func TestJobsBindDeadline(t *testing.T) {
	e := newJobsEnv(t, collector.JobsConfig{}, linuxToken)
	linuxFleet(e.server)
	e.server.InjectFault(buildkitetest.Fault{Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	began := time.Now()
	n := testutil.CollectAndCount(e.exporter.Bind(ctx))
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("a bound collection took %v", took)
	}
	if n != 1 {
		t.Errorf("%d series after a timed-out poll, want only buildkite_agent_metrics_up", n)
	}
}

func TestJobsLint(t *testing.T) {
	e := newJobsEnv(t, collector.JobsConfig{Queues: []string{"gpu"}}, linuxToken, macToken)
	linuxFleet(e.server)
	problems, err := testutil.CollectAndLint(e.exporter)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// Describe is static: the same two descriptors whatever was collected.
	ch := make(chan *prometheus.Desc, 10)
	e.exporter.Describe(ch)
	close(ch)
	if len(ch) != 2 {
		t.Errorf("Describe sent %d descriptors, want 2", len(ch))
	}
}

func TestNewJobsExporterErrors(t *testing.T) {
	if _, err := collector.NewJobsExporter(nil, collector.JobsConfig{}); err == nil {
		t.Error("no sources accepted")
	}
	if _, err := collector.NewJobsExporter([]collector.JobsSource{{Name: "x"}}, collector.JobsConfig{}); err == nil {
		t.Error("a source without API accepted")
	}
}

// A failed answer's Buildkite-Agent-Metrics-Poll-Duration is not honoured
// (a 500 asking for an hour would keep buildkite_agent_metrics_up at 0 for
// an hour after recovery), and a good answer's is capped at 5 minutes.
func TestJobsPollDurationOfFailuresIgnoredAndCapped(t *testing.T) {
	fake := buildkitetest.NewFake()
	clock := buildkitetest.NewClock(epoch)
	fake.SetClock(clock.Now)
	linuxFleet(&buildkitetest.Server{Fake: fake})
	var failing atomic.Bool
	handler := fake.Handler()
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.Header().Set("Buildkite-Agent-Metrics-Poll-Duration", "3600")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"message":"Internal Server Error"}`))
			return
		}
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(server.Close)
	api, err := agentmetrics.New(agentmetrics.Config{BaseURL: server.URL + "/v3", Token: client.StaticToken(linuxToken)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := collector.NewJobsExporter([]collector.JobsSource{{Name: "linux", API: api}},
		collector.JobsConfig{QueueRetention: time.Hour, Timeout: 10 * time.Second, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	up := func() bool { return e.Collection(context.Background())[0].OK() }
	if !up() {
		t.Fatal("the first poll failed")
	}
	failing.Store(true)
	clock.Advance(10 * time.Second)
	if up() {
		t.Fatal("a 500 reported up")
	}
	failing.Store(false)
	clock.Advance(10 * time.Second)
	if !up() {
		t.Error("10 s after a failed poll that asked for an hour, the next scrape did not poll again")
	}

	// A good answer asking for an hour is served for 5 minutes at most.
	fake.SetAgentMetricsPollDuration(3600)
	clock.Advance(10 * time.Second)
	first := e.Collection(context.Background())[0]
	if first.PollDuration != 5*time.Minute {
		t.Errorf("poll duration %v, want the 5 minute cap", first.PollDuration)
	}
	clock.Advance(5*time.Minute - time.Second)
	if again := e.Collection(context.Background())[0]; again != first {
		t.Error("within the capped poll duration, the API was polled again")
	}
	clock.Advance(time.Second)
	if again := e.Collection(context.Background())[0]; again == first {
		t.Error("5 minutes after a good answer asking for an hour, the API was not polled again")
	}
}
