package collector_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/client/graphql"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// Reused from collector_test.go: testToken, epoch, golden.

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) count(substr string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), substr)
}

type queueMetricsEnv struct {
	t        *testing.T
	server   *buildkitetest.Server
	clock    *buildkitetest.Clock
	logs     *syncBuffer
	exporter *collector.QueueMetricsExporter
}

func newQueueMetricsEnv(t *testing.T, orgs ...string) *queueMetricsEnv {
	t.Helper()
	server := buildkitetest.NewServer()
	t.Cleanup(server.Close)
	clock := buildkitetest.NewClock(epoch)
	server.SetClock(clock.Now)
	server.AddToken(testToken)
	api, err := graphql.New(graphql.Config{URL: server.GraphQLURL, Token: client.StaticToken(testToken), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	exporter, err := collector.NewQueueMetricsExporter(api, collector.QueueMetricsConfig{
		Organizations: orgs, Timeout: 10 * time.Second, Now: clock.Now, Logger: log.NewLogfmtLogger(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &queueMetricsEnv{t: t, server: server, clock: clock, logs: logs, exporter: exporter}
}

// graphQLRequests counts the requests the fake got on /graphql.
func (e *queueMetricsEnv) graphQLRequests() int {
	n := 0
	for _, r := range e.server.Requests() {
		if r.Path == "/graphql" {
			n++
		}
	}
	return n
}

// acmeClusters: Linux has a queue with moving metrics and one whose
// metrics are null, Default cluster a queue with fixed metrics, Empty none.
func acmeClusters(s *buildkitetest.Server) {
	s.AddClusterQueues("acme", "Linux", "small", "large")
	s.SetQueueMetricsNull("acme", "Linux", "large", true)
	s.AddClusterQueues("acme", "Default cluster", "default")
	s.SetQueueMetrics("acme", "Default cluster", "default", &buildkitetest.QueueMetricsValues{
		Timestamp: epoch.Add(-time.Minute), JobsPassed: 12, JobsFailed: 3, WaitMin: 0.25, WaitP50: 8, WaitP95: 95.5, WaitMax: 300,
	})
	s.AddClusterQueues("acme", "Empty")
	s.AddClusterQueues("acme", "gpu \xff", "a100") // not UTF-8
}

func TestQueueMetricsGolden(t *testing.T) {
	e := newQueueMetricsEnv(t, "acme")
	acmeClusters(e.server)
	e.server.SetGraphQLLimits(20000, 5000)
	golden(t, "queue_metrics", e.exporter)
	for _, s := range e.exporter.Latest() {
		if !s.OK() || s.Requests != 1 {
			t.Errorf("%s: ok %v, %d requests; want one good request", s.Organization, s.OK(), s.Requests)
		}
	}
}

func TestQueueMetricsNoCluster(t *testing.T) {
	e := newQueueMetricsEnv(t, "acme")
	e.server.AddOrganization("acme")
	want := `# HELP buildkite_queue_metrics_up 1 when the latest poll of Buildkite's GraphQL API for queue metrics succeeded, else 0.
# TYPE buildkite_queue_metrics_up gauge
buildkite_queue_metrics_up{organization="acme"} 1
`
	if err := testutil.CollectAndCompare(e.exporter, strings.NewReader(want),
		"buildkite_queue_metrics_up", "buildkite_queue_wait_time_seconds", "buildkite_queue_finished_jobs", "buildkite_queue_metrics_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

// TestQueueMetricsFailedPoll: after a GraphQL error or a 429, up is 0 and
// no queue series is left for the organization; one log line per change,
// not per scrape.
func TestQueueMetricsFailedPoll(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fail  func(*buildkitetest.Server)
		heals func(*queueMetricsEnv)
	}{
		{"errors array", func(s *buildkitetest.Server) { s.SetGraphQLErrors("Something went wrong") },
			func(e *queueMetricsEnv) { e.server.SetGraphQLErrors() }},
		{"429", func(s *buildkitetest.Server) { s.SetGraphQLLimits(0, 1) },
			func(e *queueMetricsEnv) { e.server.SetGraphQLLimits(0, 0); e.clock.Advance(5 * time.Minute) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newQueueMetricsEnv(t, "acme")
			acmeClusters(e.server)
			if n := testutil.CollectAndCount(e.exporter, "buildkite_queue_wait_time_seconds"); n != 12 {
				t.Fatalf("%d wait-time series before the failure, want 12", n)
			}
			tc.fail(e.server)
			for range 3 {
				e.clock.Advance(time.Minute)
				if n := testutil.CollectAndCount(e.exporter, "buildkite_queue_wait_time_seconds", "buildkite_queue_finished_jobs",
					"buildkite_queue_metrics_timestamp_seconds"); n != 0 {
					t.Errorf("%d queue series after a failed poll, want none", n)
				}
				if got := testutil.ToFloat64(upOf(e.exporter)); got != 0 {
					t.Errorf("up = %v, want 0", got)
				}
			}
			if n := e.logs.count("poll failed"); n != 1 {
				t.Errorf("%d failure log lines over three failed polls, want 1:\n%s", n, e.logs.buf.String())
			}
			tc.heals(e)
			e.clock.Advance(time.Minute)
			if n := testutil.CollectAndCount(e.exporter, "buildkite_queue_wait_time_seconds"); n != 12 {
				t.Errorf("%d wait-time series after recovery, want 12", n)
			}
			if n := e.logs.count("poll recovered"); n != 1 {
				t.Errorf("%d recovery log lines, want 1", n)
			}
		})
	}
}

// upOf collects only buildkite_queue_metrics_up.
func upOf(c prometheus.Collector) prometheus.Collector {
	return collectorFunc(func(ch chan<- prometheus.Metric) {
		all := make(chan prometheus.Metric)
		go func() {
			c.Collect(all)
			close(all)
		}()
		for m := range all {
			if strings.Contains(m.Desc().String(), `"buildkite_queue_metrics_up"`) {
				ch <- m
			}
		}
	})
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

func TestQueueMetricsInterval(t *testing.T) {
	e := newQueueMetricsEnv(t, "acme")
	acmeClusters(e.server)
	ctx := context.Background()
	first := e.exporter.Collection(ctx)[0]
	if e.graphQLRequests() != 1 || first.Requests != 1 {
		t.Fatalf("%d requests, want 1", e.graphQLRequests())
	}
	e.clock.Advance(59 * time.Second)
	if s := e.exporter.Collection(ctx)[0]; s != first || e.graphQLRequests() != 1 {
		t.Errorf("within the interval: %d requests, a new snapshot %v; want the first served", e.graphQLRequests(), s != first)
	}
	e.clock.Advance(time.Second)
	if s := e.exporter.Collection(ctx)[0]; s == first || e.graphQLRequests() != 2 {
		t.Errorf("after the interval: %d requests, want a second poll", e.graphQLRequests())
	}
}

// TestQueueMetricsPaging: 12 clusters (more than the first page of 10),
// one with 25 queues (more than the first page of 20).
func TestQueueMetricsPaging(t *testing.T) {
	e := newQueueMetricsEnv(t, "acme")
	for i := range 12 {
		e.server.AddClusterQueues("acme", fmt.Sprintf("cluster-%02d", i), "default")
	}
	for i := range 24 {
		e.server.AddClusterQueues("acme", "cluster-05", fmt.Sprintf("q%02d", i))
	}
	if n := testutil.CollectAndCount(e.exporter, "buildkite_queue_wait_time_seconds"); n != 4*(12+24) {
		t.Errorf("%d wait-time series, want %d", n, 4*(12+24))
	}
	// Two pages of clusters, one more page of cluster-05's queues.
	if s := e.exporter.Latest()[0]; s.Requests != 3 || e.graphQLRequests() != 3 {
		t.Errorf("%d requests (fake saw %d), want 3", s.Requests, e.graphQLRequests())
	}
	// Sized from the first poll: one request.
	e.clock.Advance(time.Minute)
	e.exporter.Collection(context.Background())
	if s := e.exporter.Latest()[0]; !s.OK() || s.Requests != 1 || len(s.Queues) != 36 {
		t.Errorf("second poll: ok %v, %d requests, %d queues; want 1 request, 36 queues", s.OK(), s.Requests, len(s.Queues))
	}
}

// TestQueueMetricsScrapeDeadline: a scrape whose deadline has passed gets
// up 0 at once, and the next scrape polls again.
func TestQueueMetricsScrapeDeadline(t *testing.T) {
	e := newQueueMetricsEnv(t, "acme")
	acmeClusters(e.server)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if got := testutil.ToFloat64(upOf(e.exporter.Bind(ctx))); got != 0 {
		t.Errorf("up = %v under an expired deadline, want 0", got)
	}
	if got := testutil.ToFloat64(upOf(e.exporter)); got != 1 {
		t.Errorf("up = %v on the next scrape, want 1", got)
	}
}

func TestNewQueueMetricsExporterRejects(t *testing.T) {
	api, err := graphql.New(graphql.Config{Token: client.StaticToken(testToken)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collector.NewQueueMetricsExporter(nil, collector.QueueMetricsConfig{Organizations: []string{"acme"}}); err == nil {
		t.Error("no API accepted")
	}
	if _, err := collector.NewQueueMetricsExporter(api, collector.QueueMetricsConfig{}); err == nil {
		t.Error("no organization accepted")
	}
}

// TestQueueMetricsBesideFleet: the fleet and queue metrics exporters emit
// the rate-limit families with one help text and one label set, so that
// one registry (the handler's, per scrape) takes both: every scope shows.
func TestQueueMetricsBesideFleet(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	mixedFleet(e.server, "acme")
	e.server.AddClusterQueues("acme", "Linux", "small")
	gql, err := graphql.New(graphql.Config{URL: e.server.GraphQLURL, Token: client.StaticToken(testToken), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	qm, err := collector.NewQueueMetricsExporter(gql, collector.QueueMetricsConfig{Organizations: []string{"acme"}, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	h, err := collector.NewHandler(collector.HandlerConfig{Fleet: e.exporter, QueueMetrics: qm, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`buildkite_up{organization="acme"} 1`,
		`buildkite_queue_metrics_up{organization="acme"} 1`,
		`buildkite_queue_wait_time_seconds{buildkite_cluster="Linux",organization="acme",queue="small",stat="p95"}`,
		`buildkite_api_rate_limit_remaining{organization="acme",scope="rest"}`,
		`buildkite_api_rate_limit_remaining{organization="acme",scope="graphql"}`,
		`buildkite_api_rate_limit_remaining{organization="acme",scope="graphql_user"}`,
	} {
		if rec.Code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("HTTP %d: no %s in\n%s", rec.Code, want, body)
		}
	}
	if strings.Count(body, "# HELP buildkite_api_rate_limit_remaining ") != 1 {
		t.Errorf("the rate-limit family is not written once:\n%s", body)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(e.exporter.Scrape(context.Background())); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(qm); err != nil {
		t.Fatalf("the registry refuses the queue metrics exporter beside the fleet's: %v", err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("gathering both: %v", err)
	}
}
