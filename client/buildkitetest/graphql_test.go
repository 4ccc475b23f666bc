package buildkitetest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// gqlPost sends an operation as the exporter does and decodes the answer.
func gqlPost(t *testing.T, s *buildkitetest.Server, token, op string, vars map[string]any) (*http.Response, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": "query " + op + "($org: ID!) { ... }", "operationName": op, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, s.GraphQLURL, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// path digs into decoded JSON: keys for objects, ints for arrays.
func path(v any, steps ...any) any {
	for _, s := range steps {
		switch k := s.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

func newGraphQLServer(t *testing.T) (*buildkitetest.Server, *buildkitetest.Clock) {
	s := buildkitetest.NewServer()
	t.Cleanup(s.Close)
	clock := buildkitetest.NewClock(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	s.SetClock(clock.Now)
	s.AddToken("tok")
	return s, clock
}

func TestGraphQLQueueMetricsMoveWithTheClock(t *testing.T) {
	s, clock := newGraphQLServer(t)
	s.AddClusterQueues("acme", "Linux", "small", "large")
	s.SetQueueMetricsNull("acme", "Linux", "large", true)
	vars := map[string]any{"org": "acme", "clusters": 5, "queues": 5}
	_, out := gqlPost(t, s, "tok", "QueueMetrics", vars)
	node := path(out, "data", "organization", "clusters", "edges", 0, "node")
	if path(node, "name") != "Linux" || path(node, "uuid") != buildkitetest.ClusterID("acme", "Linux") {
		t.Fatalf("cluster node = %v", node)
	}
	large := path(node, "queues", "edges", 0, "node")
	if path(large, "key") != "large" || path(large, "metrics") != nil {
		t.Errorf("large = %v, want null metrics", large)
	}
	small := path(node, "queues", "edges", 1, "node", "metrics")
	want := buildkitetest.QueueMetricsAt(buildkitetest.QueueID(buildkitetest.ClusterID("acme", "Linux"), "small"), clock.Now())
	if path(small, "timestamp") != "2026-12-01T10:00:00Z" || path(small, "waitTimeSec", "p50") != want.WaitP50 ||
		path(small, "jobsPassedCount") != float64(want.JobsPassed) {
		t.Errorf("small metrics = %v, want %+v", small, want)
	}
	clock.Advance(time.Minute)
	_, out = gqlPost(t, s, "tok", "QueueMetrics", vars)
	later := path(out, "data", "organization", "clusters", "edges", 0, "node", "queues", "edges", 1, "node", "metrics")
	if path(later, "timestamp") != "2026-12-01T10:01:00Z" {
		t.Errorf("a minute later the bucket is %v", path(later, "timestamp"))
	}
	if a, b := buildkitetest.QueueMetricsAt("q", clock.Now()), buildkitetest.QueueMetricsAt("q", clock.Now().Add(time.Minute)); a == b {
		t.Errorf("values do not move between buckets: %+v", a)
	}
}

func TestGraphQLPaging(t *testing.T) {
	s, _ := newGraphQLServer(t)
	s.AddClusterQueues("acme", "a", "q1", "q2", "q3")
	s.AddClusterQueues("acme", "b")
	s.AddClusterQueues("acme", "c", "q1")
	var names []string
	after := ""
	for range 5 {
		vars := map[string]any{"org": "acme", "clusters": 2, "queues": 2}
		if after != "" {
			vars["after"] = after
		}
		_, out := gqlPost(t, s, "tok", "QueueMetrics", vars)
		conn := path(out, "data", "organization", "clusters")
		for _, e := range path(conn, "edges").([]any) {
			names = append(names, path(e, "node", "name").(string))
		}
		if path(conn, "pageInfo", "hasNextPage") != true {
			break
		}
		after = path(conn, "pageInfo", "endCursor").(string)
	}
	if strings.Join(names, " ") != "a b c" {
		t.Errorf("clusters paged = %v", names)
	}
	// Cluster a's queues, two at a time, by the cluster's UUID.
	_, out := gqlPost(t, s, "tok", "QueueMetrics", map[string]any{"org": "acme", "clusters": 1, "queues": 2})
	qconn := path(out, "data", "organization", "clusters", "edges", 0, "node", "queues")
	if path(qconn, "pageInfo", "hasNextPage") != true {
		t.Fatalf("queues of a: %v", qconn)
	}
	_, out = gqlPost(t, s, "tok", "ClusterQueues", map[string]any{"org": "acme", "cluster": buildkitetest.ClusterID("acme", "a"),
		"queues": 2, "after": path(qconn, "pageInfo", "endCursor")})
	rest := path(out, "data", "organization", "cluster", "queues")
	if path(rest, "edges", 0, "node", "key") != "q3" || path(rest, "edges", 1) != nil || path(rest, "pageInfo", "hasNextPage") != false {
		t.Errorf("second page of a's queues = %v", rest)
	}
}

func TestGraphQLErrorsAndLimits(t *testing.T) {
	s, clock := newGraphQLServer(t)
	s.AddClusterQueues("acme", "Linux", "small")
	vars := map[string]any{"org": "acme", "clusters": 1, "queues": 1}

	resp, out := gqlPost(t, s, "wrong", "QueueMetrics", vars)
	if resp.StatusCode != http.StatusUnauthorized || path(out, "errors", 0, "message") != buildkitetest.MsgGraphQLUnauthorized {
		t.Errorf("unknown token: %d %v", resp.StatusCode, out)
	}
	_, out = gqlPost(t, s, "tok", "QueueMetrics", map[string]any{"org": "nobody", "clusters": 1, "queues": 1})
	if d := path(out, "data"); d == nil || path(d, "organization") != nil {
		t.Errorf("unknown organization: %v, want a null organization", out)
	}
	_, out = gqlPost(t, s, "tok", "Other", vars)
	if path(out, "errors", 0, "message") == nil {
		t.Errorf("unknown operation answered %v", out)
	}

	s.SetGraphQLErrors("boom")
	resp, out = gqlPost(t, s, "tok", "QueueMetrics", vars)
	if resp.StatusCode != http.StatusOK || path(out, "errors", 0, "message") != "boom" || path(out, "data") != nil {
		t.Errorf("injected errors: %d %v", resp.StatusCode, out)
	}
	s.SetGraphQLErrors()

	// 4 + 1 + 3 + 3 = 11 actual points an answer, after 1 for the unknown
	// organization's: the user limit of 20 is spent after two.
	s.SetGraphQLLimits(0, 20)
	for i, want := range []int{8, -3} {
		resp, _ = gqlPost(t, s, "tok", "QueueMetrics", vars)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("RateLimit-User-Remaining") != itoa(want) ||
			resp.Header.Get("RateLimit-User-Limit") != "20" || resp.Header.Get("RateLimit-Limit") != itoa(buildkitetest.UnlimitedRateLimit) {
			t.Errorf("answer %d: %d, headers %v", i, resp.StatusCode, resp.Header)
		}
	}
	clock.Advance(100 * time.Second)
	resp, out = gqlPost(t, s, "tok", "QueueMetrics", vars)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("RateLimit-User-Reset") != "200" ||
		path(out, "errors", 0, "message") != buildkitetest.MsgGraphQLRateLimited {
		t.Errorf("spent: %d %v %v", resp.StatusCode, resp.Header, out)
	}
	clock.Advance(200 * time.Second)
	if resp, _ = gqlPost(t, s, "tok", "QueueMetrics", vars); resp.StatusCode != http.StatusOK {
		t.Errorf("after the window: %d", resp.StatusCode)
	}
	if got := s.Requests(); got[len(got)-1].Path != "/graphql" || got[len(got)-1].Method != http.MethodPost {
		t.Errorf("recorded %+v", got[len(got)-1])
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestGraphQLOneFleet: the GraphQL API lists the clusters and queues the
// REST API declares (the demo fleet's), with the same names, keys and
// UUIDs, and the demo fleet's gpu queue has null metrics.
func TestGraphQLOneFleet(t *testing.T) {
	s, clock := newGraphQLServer(t)
	cfg := buildkitetest.DemoFleet()
	cfg.Agents, cfg.Seed, cfg.Now = 20, 1, clock.Now
	buildkitetest.NewSimulator(s.Fake, "demo", cfg)
	want := map[string]string{} // queue UUID -> "cluster/key", from REST
	for _, c := range s.Clusters("demo") {
		for _, q := range s.Queues("demo", c.ID) {
			want[q.ID] = c.Name + "/" + q.Key
		}
	}
	_, out := gqlPost(t, s, "tok", "QueueMetrics", map[string]any{"org": "demo", "clusters": 10, "queues": 10})
	got := map[string]string{}
	var names []string
	for _, e := range path(out, "data", "organization", "clusters", "edges").([]any) {
		c := path(e, "node")
		name := path(c, "name").(string)
		names = append(names, name)
		if path(c, "uuid") != buildkitetest.ClusterID("demo", name) {
			t.Errorf("cluster %s has UUID %v, REST says %s", name, path(c, "uuid"), buildkitetest.ClusterID("demo", name))
		}
		for _, qe := range path(c, "queues", "edges").([]any) {
			q := path(qe, "node")
			got[path(q, "uuid").(string)] = name + "/" + path(q, "key").(string)
			if null := path(q, "metrics") == nil; null != (path(q, "key") == "gpu") {
				t.Errorf("queue %s/%v: metrics null %v", name, path(q, "key"), null)
			}
		}
	}
	if strings.Join(names, ",") != "Default cluster,linux,macos" || len(got) != len(want) {
		t.Fatalf("GraphQL lists clusters %v and queues %v; REST declares %v", names, got, want)
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("queue %s: GraphQL %q, REST %q", id, got[id], w)
		}
	}
}
