package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// graphQLRequests counts the requests the fake got on its GraphQL endpoint.
func graphQLRequests(fake *buildkitetest.Server) int {
	n := 0
	for _, r := range fake.Requests() {
		if r.Path == "/graphql" {
			n++
		}
	}
	return n
}

// --collector.queue-metrics: off (the default), not one GraphQL request;
// on, the wait times of the cluster queues the REST API lists, with the
// same API token, and the GraphQL budgets beside the REST one.
func TestQueueMetricsFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		fake := newFake(t)
		fake.AddCluster("acme", "linux", "build", "deploy")
		args := []string{"--buildkite.organization=acme", "--buildkite.api-url=" + fake.URL, "--buildkite.graphql-url=" + fake.GraphQLURL}
		if on {
			args = append(args, "--collector.queue-metrics", "--collector.queue-metrics-interval=1h")
		}
		r := start(t, []string{"BUILDKITE_API_TOKEN=" + e2eToken}, args...)
		var body string
		for range 2 {
			code, b := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
			if code != 200 {
				t.Fatalf("queue metrics %v: GET /metrics: %d\n%s", on, code, b)
			}
			body = b
		}
		if !on {
			if n := graphQLRequests(fake); n != 0 || strings.Contains(body, "buildkite_queue_metrics_up") {
				t.Errorf("queue metrics off: %d GraphQL requests, want none", n)
			}
			continue
		}
		for _, want := range []string{
			`buildkite_queue_metrics_up{organization="acme"} 1`,
			`buildkite_queue_wait_time_seconds{buildkite_cluster="linux",organization="acme",queue="build",stat="p50"}`,
			`buildkite_queue_finished_jobs{buildkite_cluster="linux",organization="acme",queue="deploy",result="failed"}`,
			`buildkite_api_rate_limit_remaining{organization="acme",scope="rest"}`,
			`buildkite_api_rate_limit_remaining{organization="acme",scope="graphql_user"}`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("queue metrics on: /metrics lacks %s\n%s", want, body)
			}
		}
		if n := graphQLRequests(fake); n != 1 {
			t.Errorf("queue metrics on: %d GraphQL requests over two scrapes within the interval, want 1", n)
		}
		if auth := fake.Requests()[len(fake.Requests())-1].Authorization; strings.Contains(r.output.String(), e2eToken) || auth == "" {
			t.Error("the token leaked into the output, or was not sent")
		}
	}
}

// Agent Metrics requests that never got a good answer are counted under
// the token file's base name.
func TestAgentMetricsRequestsNamedByTokenFile(t *testing.T) {
	fake := newFake(t)
	tokenFile := filepath.Join(t.TempDir(), "linux.token")
	if err := os.WriteFile(tokenFile, []byte("bkct_revoked_token_0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := start(t, nil, "--buildkite.agent-token-file="+tokenFile, "--buildkite.agent-api-url="+fake.AgentURL)
	_, body := get(t, http.DefaultClient, "http://"+r.addr+"/metrics", nil)
	if want := `buildkite_exporter_api_requests_total{code="401",organization="linux.token"} 1`; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %s\n%s", want, body)
	}
}
