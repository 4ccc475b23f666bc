package graphql_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/client/graphql"
)

const testToken = "bkua_secret_token_0123456789"

var start = time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)

type requestLog struct {
	mu    sync.Mutex
	codes []int
	orgs  []string
}

func (l *requestLog) ObserveRequest(org string, code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes = append(l.codes, code)
	l.orgs = append(l.orgs, org)
}

func setup(t *testing.T) (*buildkitetest.Server, *graphql.Client, *buildkitetest.Clock, *requestLog) {
	t.Helper()
	srv := buildkitetest.NewServer()
	t.Cleanup(srv.Close)
	clock := buildkitetest.NewClock(start)
	srv.SetClock(clock.Now)
	srv.AddToken(testToken)
	log := &requestLog{}
	c, err := graphql.New(graphql.Config{URL: srv.GraphQLURL, Token: client.StaticToken(testToken), Observer: log, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, clock, log
}

func TestQueueMetrics(t *testing.T) {
	srv, c, clock, log := setup(t)
	srv.AddClusterQueues("acme", "Linux", "small", "large")
	srv.AddClusterQueues("acme", "Default cluster", "default")
	srv.AddClusterQueues("acme", "Empty")
	srv.SetQueueMetricsNull("acme", "Linux", "large", true)
	fixed := buildkitetest.QueueMetricsValues{Timestamp: start.Truncate(time.Minute), JobsPassed: 7, JobsFailed: 2, WaitMin: 1, WaitP50: 4.5, WaitP95: 30, WaitMax: 61.25}
	srv.SetQueueMetrics("acme", "Default cluster", "default", &fixed)

	res, err := c.QueueMetrics(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	moving := buildkitetest.QueueMetricsAt(buildkitetest.QueueID(buildkitetest.ClusterID("acme", "Linux"), "small"), clock.Now())
	want := []graphql.Cluster{
		{UUID: buildkitetest.ClusterID("acme", "Default cluster"), Name: "Default cluster", Queues: []graphql.Queue{
			{UUID: buildkitetest.QueueID(buildkitetest.ClusterID("acme", "Default cluster"), "default"), Key: "default", Metrics: metricsOf(fixed)},
		}},
		{UUID: buildkitetest.ClusterID("acme", "Empty"), Name: "Empty", Queues: []graphql.Queue{}},
		{UUID: buildkitetest.ClusterID("acme", "Linux"), Name: "Linux", Queues: []graphql.Queue{
			{UUID: buildkitetest.QueueID(buildkitetest.ClusterID("acme", "Linux"), "large"), Key: "large"},
			{UUID: buildkitetest.QueueID(buildkitetest.ClusterID("acme", "Linux"), "small"), Key: "small", Metrics: metricsOf(moving)},
		}},
	}
	checkClusters(t, res.Clusters, want)
	if res.Requests != 1 || len(log.codes) != 1 || log.codes[0] != 200 || log.orgs[0] != "acme" {
		t.Errorf("requests = %d, observed %v %v; want one 200 for acme", res.Requests, log.codes, log.orgs)
	}
	if want := graphql.Complexity(10, 20); res.RequestedComplexity != want {
		t.Errorf("first poll requested %d points, want %d (initial page sizes)", res.RequestedComplexity, want)
	}
	// The next poll asks only for what the first one found: 3 clusters, 2 queues.
	res, err = c.QueueMetrics(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if want := graphql.Complexity(3, 2); res.Requests != 1 || res.RequestedComplexity != want {
		t.Errorf("second poll: %d requests, %d points; want 1 and %d", res.Requests, res.RequestedComplexity, want)
	}
	req := srv.Requests()[len(srv.Requests())-1]
	if req.Method != http.MethodPost || req.Authorization != "Bearer "+testToken {
		t.Errorf("request %s with Authorization %q", req.Method, req.Authorization)
	}
}

func metricsOf(v buildkitetest.QueueMetricsValues) *graphql.Metrics {
	return &graphql.Metrics{Timestamp: v.Timestamp, JobsPassed: int64(v.JobsPassed), JobsFailed: int64(v.JobsFailed),
		WaitMin: v.WaitMin, WaitP50: v.WaitP50, WaitP95: v.WaitP95, WaitMax: v.WaitMax}
}

func checkClusters(t *testing.T, got, want []graphql.Cluster) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d clusters %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.UUID != w.UUID || g.Name != w.Name || len(g.Queues) != len(w.Queues) {
			t.Errorf("cluster %d = %+v, want %+v", i, g, w)
			continue
		}
		for j := range w.Queues {
			gq, wq := g.Queues[j], w.Queues[j]
			if gq.UUID != wq.UUID || gq.Key != wq.Key || (gq.Metrics == nil) != (wq.Metrics == nil) ||
				(gq.Metrics != nil && *gq.Metrics != *wq.Metrics) {
				t.Errorf("cluster %s queue %d = %+v (%+v), want %+v (%+v)", w.Name, j, gq, gq.Metrics, wq, wq.Metrics)
			}
		}
	}
}

func TestQueueMetricsPaging(t *testing.T) {
	srv, c, _, _ := setup(t)
	srv.AddClusterQueues("acme", "a", "q1", "q2")
	srv.AddClusterQueues("acme", "b", "q1")
	if _, err := c.QueueMetrics(context.Background(), "acme"); err != nil {
		t.Fatal(err)
	}
	// Learned page sizes: 2 clusters, 2 queues. Now the organization grows:
	// 5 clusters, and cluster a has 5 queues.
	srv.AddClusterQueues("acme", "a", "q3", "q4", "q5")
	srv.AddClusterQueues("acme", "c", "q1")
	srv.AddClusterQueues("acme", "d", "q1", "q2")
	srv.AddClusterQueues("acme", "e", "q1")
	res, err := c.QueueMetrics(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, cl := range res.Clusters {
		for _, q := range cl.Queues {
			got = append(got, cl.Name+"/"+q.Key)
		}
	}
	want := "a/q1 a/q2 a/q3 a/q4 a/q5 b/q1 c/q1 d/q1 d/q2 e/q1"
	if strings.Join(got, " ") != want {
		t.Errorf("queues = %v, want %s", got, want)
	}
	// Cluster pages: [a b] [c d] [e]; a's queues: [q1 q2] then [q3 q4] [q5].
	wantPoints := 3*graphql.Complexity(2, 2) + 2*graphql.QueuesComplexity(2)
	if res.Requests != 5 || res.RequestedComplexity != wantPoints {
		t.Errorf("%d requests, %d points; want 5 and %d", res.Requests, res.RequestedComplexity, wantPoints)
	}
	// Sized from that poll (5 clusters, at most 5 queues): one request.
	res, err = c.QueueMetrics(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 1 || res.RequestedComplexity != graphql.Complexity(5, 5) || len(res.Clusters) != 5 {
		t.Errorf("third poll: %d requests, %d points, %d clusters; want 1, %d, 5", res.Requests, res.RequestedComplexity, len(res.Clusters), graphql.Complexity(5, 5))
	}
}

func TestQueueMetricsNoCluster(t *testing.T) {
	srv, c, _, _ := setup(t)
	srv.AddOrganization("acme")
	res, err := c.QueueMetrics(context.Background(), "acme")
	if err != nil || res.Clusters == nil || len(res.Clusters) != 0 {
		t.Fatalf("got %+v, %v; want no cluster and no error", res, err)
	}
}

func TestQueueMetricsErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(*buildkitetest.Server)
		org    string
		token  string
		target error
		text   string
	}{
		{"errors array", func(s *buildkitetest.Server) { s.SetGraphQLErrors("Field 'metrics' doesn't exist", "second") }, "acme", testToken,
			graphql.ErrQuery, "Field 'metrics' doesn't exist; second"},
		{"unknown organization", nil, "nobody", testToken, client.ErrNotFound, "organization not found"},
		{"unknown token", nil, "acme", "bkua_other", client.ErrUnauthorized, buildkitetest.MsgGraphQLUnauthorized},
		{"forbidden", func(s *buildkitetest.Server) {
			s.InjectFault(buildkitetest.Fault{Status: 403, Body: `{"errors":[{"message":"no GraphQL access"}]}`})
		}, "acme", testToken, client.ErrForbidden, "HTTP 403"},
		{"server error", func(s *buildkitetest.Server) {
			s.InjectFault(buildkitetest.Fault{Status: 502, Body: "<html>bad gateway</html>"})
		},
			"acme", testToken, client.ErrServer, "<html>bad gateway</html>"},
		{"malformed", func(s *buildkitetest.Server) { s.InjectFault(buildkitetest.Fault{Malformed: true}) }, "acme", testToken, client.ErrMalformed, "invalid JSON"},
		{"content type", func(s *buildkitetest.Server) { s.InjectFault(buildkitetest.Fault{ContentType: "text/html"}) }, "acme", testToken, client.ErrMalformed, "content type"},
		{"truncated", func(s *buildkitetest.Server) { s.InjectFault(buildkitetest.Fault{Truncate: true}) }, "acme", testToken, client.ErrMalformed, "reading"},
		{"token echoed", func(s *buildkitetest.Server) {
			s.InjectFault(buildkitetest.Fault{Status: 401, Body: `{"errors":[{"message":"bad token ` + testToken + `"}]}`})
		}, "acme", testToken, client.ErrUnauthorized, "bad token [REDACTED]"},
		{"token echoed in 200 errors", func(s *buildkitetest.Server) { s.SetGraphQLErrors("token " + testToken + " lacks access") },
			"acme", testToken, graphql.ErrQuery, "token [REDACTED] lacks access"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, clock, log := setup(t)
			srv.AddClusterQueues("acme", "Linux", "small")
			if tc.setup != nil {
				tc.setup(srv)
			}
			c, err := graphql.New(graphql.Config{URL: srv.GraphQLURL, Token: client.StaticToken(tc.token), Observer: log, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			res, err := c.QueueMetrics(context.Background(), tc.org)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v containing %q", err, tc.target, tc.text)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("the error contains the token: %v", err)
			}
			if res == nil || res.Requests != 1 || res.Clusters != nil {
				t.Errorf("result = %+v, want one request and no clusters", res)
			}
		})
	}
}

func TestQueueMetricsRateLimited(t *testing.T) {
	for _, tc := range []struct {
		name            string
		orgLimit, user  int
		scope           string
		otherOrgBlocked bool
	}{
		{"organization", 50, 0, graphql.ScopeGraphQL, false},
		{"user", 0, 50, graphql.ScopeGraphQLUser, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, c, clock, log := setup(t)
			srv.AddClusterQueues("acme", "Linux", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8", "q9")
			srv.AddClusterQueues("other", "Linux", "q1")
			srv.SetGraphQLLimits(tc.orgLimit, tc.user)
			ctx := context.Background()
			// 4 + 4 + 3*9 = 35 actual points, requested 804: charged 35... twice, then spent.
			for i := 0; i < 2; i++ {
				if _, err := c.QueueMetrics(ctx, "acme"); err != nil {
					t.Fatalf("poll %d: %v", i, err)
				}
			}
			rl := c.RateLimits("acme")
			if !rl.HasGraphQL || !rl.HasGraphQLUser || rl.GraphQLUser.Reset != 300 {
				t.Errorf("rate limits = %+v, want both budgets with a 300 s reset", rl)
			}
			clock.Advance(10 * time.Second)
			res, err := c.QueueMetrics(ctx, "acme")
			var rle *graphql.RateLimitError
			if !errors.As(err, &rle) || !errors.Is(err, client.ErrRateLimited) || !rle.Sent || rle.Scope != tc.scope ||
				!rle.ResetAt.Equal(start.Add(300*time.Second)) || res.Requests != 1 || !strings.Contains(err.Error(), "exceeded") {
				t.Fatalf("err = %v (%+v), requests %d; want a sent 429 of scope %s until %s", err, rle, res.Requests, tc.scope, start.Add(300*time.Second))
			}
			if log.codes[len(log.codes)-1] != http.StatusTooManyRequests {
				t.Errorf("observed %v, want a 429 last", log.codes)
			}
			// Inside the window no request is sent.
			sent := len(srv.Requests())
			res, err = c.QueueMetrics(ctx, "acme")
			if !errors.As(err, &rle) || rle.Sent || res.Requests != 0 || len(srv.Requests()) != sent {
				t.Errorf("err = %v, requests %d; want a refusal without request", err, res.Requests)
			}
			_, err = c.QueueMetrics(ctx, "other")
			if blocked := errors.Is(err, client.ErrRateLimited); blocked != tc.otherOrgBlocked {
				t.Errorf("other organization: err = %v, want blocked %v", err, tc.otherOrgBlocked)
			}
			// After the reset, polls go through again.
			clock.Advance(291 * time.Second)
			if _, err := c.QueueMetrics(ctx, "acme"); err != nil {
				t.Errorf("after the reset: %v", err)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []graphql.Config{
		{},
		{Token: client.StaticToken("t"), URL: "ftp://example.com"},
		{Token: client.StaticToken("t"), URL: "https://user:pass@example.com/v1"},
		{Token: client.StaticToken("t"), MaxResponseBytes: -1},
		{Token: client.StaticToken("t"), MaxRequests: -1},
	} {
		if _, err := graphql.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		} else if strings.Contains(err.Error(), "pass") {
			t.Errorf("the error quotes the URL's credentials: %v", err)
		}
	}
}

func TestMaxRequests(t *testing.T) {
	srv, _, clock, _ := setup(t)
	for _, n := range []string{"a", "b", "c"} {
		srv.AddClusterQueues("acme", n, "q")
	}
	c, err := graphql.New(graphql.Config{URL: srv.GraphQLURL, Token: client.StaticToken(testToken), Now: clock.Now, MaxRequests: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv.AddClusterQueues("acme", "z", "q")
	if _, err := c.QueueMetrics(context.Background(), "acme"); err != nil { // 10 clusters a page: fits
		t.Fatal(err)
	}
	srv.AddClusterQueues("acme", "y", "q") // 5 clusters now, page size 4 learned
	res, err := c.QueueMetrics(context.Background(), "acme")
	if !errors.Is(err, client.ErrPageLimit) || res.Requests != 1 {
		t.Errorf("err = %v, requests %d; want ErrPageLimit after one request", err, res.Requests)
	}
}
