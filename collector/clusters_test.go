package collector_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	dto "github.com/prometheus/client_model/go"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// newClusterEnv is newEnv with clusters read, and a token with scopes
// (read_agents and read_clusters when none are given).
func newClusterEnv(t *testing.T, cfg collector.Config, scopes ...string) (*env, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Clusters = true
	cfg.Logger = log.NewLogfmtLogger(logs)
	e := newEnv(t, cfg)
	if len(scopes) == 0 {
		scopes = []string{buildkitetest.ScopeReadAgents, buildkitetest.ScopeReadClusters}
	}
	e.server.AddToken(testToken, scopes...)
	return e, logs
}

// agentInCluster is an agent of the cluster's queue; queue "" leaves the
// agent without a queue, so it serves the cluster's default queue.
func agentInCluster(org, id, cluster, queue string) buildkitetest.Agent {
	a := agentInQueue(id, queue)
	clusterID := buildkitetest.ClusterID(org, cluster)
	if queue == "" {
		a.ClusterID = clusterID
	} else {
		a.ClusterQueueID = buildkitetest.QueueID(clusterID, queue)
	}
	return a
}

// fleetWithClusters is two clusters with a queue "default" each: linux
// (default queue "default", and "gpu" that no agent serves, its dispatch
// paused) and macos (default queue "m1", and "default").
func fleetWithClusters(s *buildkitetest.Server, org string, clock *buildkitetest.Clock) {
	linux := s.AddCluster(org, "linux", "default", "gpu")
	s.AddCluster(org, "macos", "m1", "default")
	s.SetDispatchPaused(org, linux, buildkitetest.QueueID(linux, "gpu"), true, "driver update")
	s.PutAgent(org, agentInCluster(org, "l1", "linux", "default"))
	s.PutAgent(org, agentInCluster(org, "l2", "linux", "default"))
	s.PutAgent(org, agentInCluster(org, "m1", "macos", "default"))
	// Listed without the queue it serves (as older API versions did):
	// its cluster's default queue, m1, is its queue.
	m2 := agentInCluster(org, "m2", "macos", "")
	m2.Extra = map[string]any{"queue": buildkitetest.Omit}
	s.PutAgent(org, m2)
	clock.Advance(time.Second)
}

func unclusteredFleet(s *buildkitetest.Server, org string) {
	s.PutAgent(org, agentInQueue("u1", "default"))
	s.PutAgent(org, agentInQueue("u2", "build"))
}

// Clustered, unclustered and mixed organizations, from the first scrape
// after a start: names as labels, queues per cluster, cluster queues
// without agents zero-filled, dispatch state, configured queues by
// cluster name and ID.
func TestClustersGolden(t *testing.T) {
	tests := []struct {
		name   string
		queues []string
		fleet  func(*env)
	}{
		{"clusters_clustered", nil, func(e *env) { fleetWithClusters(e.server, "acme", e.clock) }},
		{"clusters_unclustered", []string{"gpu"}, func(e *env) { unclusteredFleet(e.server, "acme") }},
		{"clusters_mixed", []string{"spare", "macos/arm", buildkitetest.ClusterID("acme", "linux") + "/big", "nowhere/x"}, func(e *env) {
			fleetWithClusters(e.server, "acme", e.clock)
			unclusteredFleet(e.server, "acme")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaults("acme")
			cfg.Queues = tt.queues
			e, _ := newClusterEnv(t, cfg)
			tt.fleet(e)
			e.golden(tt.name)
		})
	}
}

// Two clusters with a queue "default" each are two series, each with its
// own count.
func TestTwoClustersSameQueueKey(t *testing.T) {
	e, _ := newClusterEnv(t, defaults("acme"))
	fleetWithClusters(e.server, "acme", e.clock)
	fams := families(t, e.exporter)
	for _, tt := range []struct {
		cluster, queue string
		want           float64
	}{{"linux", "default", 2}, {"macos", "default", 1}, {"macos", "m1", 1}, {"linux", "gpu", 0}} {
		got := sum(fams, "buildkite_agents", "buildkite_cluster", tt.cluster, "queue", tt.queue, "connection_state", "connected")
		if got != tt.want || seriesWith(fams, "buildkite_agents_idle", "buildkite_cluster", tt.cluster, "queue", tt.queue) != 1 {
			t.Errorf("cluster %s queue %s: %v connected agents, want %v in one series", tt.cluster, tt.queue, got, tt.want)
		}
	}
	if got := sum(fams, "buildkite_queue_dispatch_paused", "buildkite_cluster", "linux", "queue", "gpu"); got != 1 {
		t.Errorf("dispatch of linux/gpu paused = %v, want 1", got)
	}
	if got := series(fams, "buildkite_queue_dispatch_paused_timestamp_seconds"); got != 1 {
		t.Errorf("%d dispatch-paused timestamps, want 1 (only the paused queue)", got)
	}
}

// Without read_clusters: UUIDs as labels, buildkite_clusters_up 0, one log
// line however many scrapes, the agents as before (buildkite_up 1), and
// no request for clusters until the interval has passed.
func TestClustersWithoutScope(t *testing.T) {
	e, logs := newClusterEnv(t, defaults("acme"), buildkitetest.ScopeReadAgents)
	fleetWithClusters(e.server, "acme", e.clock)
	var fams map[string]*dto.MetricFamily
	for range 3 {
		fams = families(t, e.exporter)
		e.clock.Advance(time.Minute)
	}
	linux := buildkitetest.ClusterID("acme", "linux")
	if got := sum(fams, "buildkite_agents", "buildkite_cluster", linux, "queue", "default", "connection_state", "connected"); got != 2 {
		t.Errorf("agents of cluster %s queue default = %v, want 2", linux, got)
	}
	// Without the cluster's default queue, an agent without a queue
	// serves "default".
	macos := buildkitetest.ClusterID("acme", "macos")
	if got := sum(fams, "buildkite_agents", "buildkite_cluster", macos, "queue", "default", "connection_state", "connected"); got != 2 {
		t.Errorf("agents of cluster %s queue default = %v, want 2", macos, got)
	}
	if up, clustersUp := sum(fams, "buildkite_up"), sum(fams, "buildkite_clusters_up"); up != 1 || clustersUp != 0 || series(fams, "buildkite_clusters_up") != 1 {
		t.Errorf("buildkite_up %v, buildkite_clusters_up %v: want 1 and 0", up, clustersUp)
	}
	if n := series(fams, "buildkite_queue_dispatch_paused"); n != 0 {
		t.Errorf("%d dispatch series without a clusters read", n)
	}
	if n := logs.count("lacks the read_clusters scope"); n != 1 {
		t.Errorf("%d log lines name read_clusters, want 1:\n%s", n, &logs.buf)
	}
	if n := clusterRequests(e); n != 1 {
		t.Errorf("%d clusters requests in 3 scrapes, want 1 (the next after the interval)", n)
	}
}

// A clusters read costs requests once per interval, counted in the
// collection that made them.
func TestClustersReadOncePerInterval(t *testing.T) {
	cfg := defaults("acme")
	cfg.ClustersInterval = 5 * time.Minute
	e, _ := newClusterEnv(t, cfg)
	fleetWithClusters(e.server, "acme", e.clock)
	// One list of clusters and one of queues per cluster.
	const perRead = 3
	for i, tt := range []struct {
		advance        time.Duration
		reads          int
		scrapeClusters int // clusters requests in buildkite_scrape_api_requests
	}{
		{0, 1, perRead},
		{time.Minute, 1, 0},
		{3 * time.Minute, 1, 0},
		{time.Minute, 2, perRead}, // 5 minutes after the first
		{time.Minute, 2, 0},
	} {
		e.clock.Advance(tt.advance)
		before := len(e.server.Requests())
		fams := families(t, e.exporter)
		made := len(e.server.Requests()) - before
		if got := clusterRequests(e); got != tt.reads*perRead {
			t.Errorf("scrape %d: %d clusters requests so far, want %d", i, got, tt.reads*perRead)
		}
		if got := sum(fams, "buildkite_scrape_api_requests"); int(got) != made || made != 1+tt.scrapeClusters {
			t.Errorf("scrape %d: buildkite_scrape_api_requests %v, requests made %d, want %d", i, got, made, 1+tt.scrapeClusters)
		}
	}
}

// A failed read keeps the last good one (names, queues), says
// buildkite_clusters_up 0, never fails the listing, and is retried at the
// next collection. A failed first read gives UUIDs until one succeeds.
func TestClustersReadFails(t *testing.T) {
	e, logs := newClusterEnv(t, defaults("acme"))
	fleetWithClusters(e.server, "acme", e.clock)
	remove := e.server.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/clusters"), Status: http.StatusBadGateway})
	fams := families(t, e.exporter)
	linux := buildkitetest.ClusterID("acme", "linux")
	if sum(fams, "buildkite_up") != 1 || sum(fams, "buildkite_clusters_up") != 0 ||
		sum(fams, "buildkite_agents", "buildkite_cluster", linux, "queue", "default", "connection_state", "connected") != 2 {
		t.Errorf("a failed first read: want buildkite_up 1, buildkite_clusters_up 0 and UUID labels")
	}
	remove()
	e.clock.Advance(time.Second)
	fams = families(t, e.exporter) // retried at once
	if sum(fams, "buildkite_clusters_up") != 1 || sum(fams, "buildkite_agents", "buildkite_cluster", "linux", "queue", "default", "connection_state", "connected") != 2 {
		t.Errorf("the read after a failure: want buildkite_clusters_up 1 and names")
	}

	e.clock.Advance(10 * time.Minute)
	e.server.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/queues"), Status: http.StatusInternalServerError})
	fams = families(t, e.exporter)
	if sum(fams, "buildkite_clusters_up") != 0 || sum(fams, "buildkite_up") != 1 ||
		seriesWith(fams, "buildkite_agents_idle", "buildkite_cluster", "linux", "queue", "gpu") != 1 ||
		sum(fams, "buildkite_queue_dispatch_paused", "buildkite_cluster", "linux", "queue", "gpu") != 1 {
		t.Errorf("a failed later read: want buildkite_clusters_up 0, buildkite_up 1 and the last good read's names and queues")
	}
	before := clusterRequests(e)
	e.clock.Advance(time.Second)
	families(t, e.exporter)
	if clusterRequests(e) == before {
		t.Error("a failed read is not retried at the next collection")
	}
	if n := logs.count("reading clusters failed"); n != 2 {
		t.Errorf("%d failure log lines, want 2 (one per failure):\n%s", n, &logs.buf)
	}
}

// Without --collector.clusters nothing is read and nothing of clusters is
// emitted; the agents still carry their cluster's UUID.
func TestClustersDisabled(t *testing.T) {
	e := newEnv(t, defaults("acme"))
	fleetWithClusters(e.server, "acme", e.clock)
	fams := families(t, e.exporter)
	if n := clusterRequests(e); n != 0 {
		t.Errorf("%d clusters requests with clusters off", n)
	}
	if series(fams, "buildkite_clusters_up")+series(fams, "buildkite_queue_dispatch_paused") != 0 {
		t.Error("clusters families with clusters off")
	}
	if got := sum(fams, "buildkite_agents_idle", "buildkite_cluster", buildkitetest.ClusterID("acme", "linux")); got != 2 {
		t.Errorf("idle agents of linux by UUID = %v, want 2", got)
	}
}

func clusterRequests(e *env) int {
	n := 0
	for _, r := range e.server.Requests() {
		if strings.Contains(r.Path, "/clusters") {
			n++
		}
	}
	return n
}

// seriesWith counts the series of name whose labels match the pairs.
func seriesWith(fams map[string]*dto.MetricFamily, name string, match ...string) int {
	n := 0
	for _, m := range fams[name].GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			ok = ok && labels[match[i]] == match[i+1]
		}
		if ok {
			n++
		}
	}
	return n
}
