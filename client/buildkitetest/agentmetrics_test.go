package buildkitetest

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

const testAgentToken = "agent-token-for-tests"

// getAgentAPI sends GET path with "Token tok" and decodes the JSON answer.
func getAgentAPI(t *testing.T, s *Server, path, tok string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.AgentURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Token "+tok)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header, body
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestAgentMetricsAPI(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddAgentToken(testAgentToken, "acme", "linux")
	s.PutAgent("acme", Agent{ID: "a1", Queue: "build", Job: &Job{ID: "j1", State: "running"}})
	s.PutAgent("acme", Agent{ID: "a2", MetaData: []string{"queue=build", "queue=deploy"}})
	s.PutAgent("acme", Agent{ID: "a3"}) // default
	s.PutAgent("acme", Agent{ID: "a4", ConnectionState: StateDisconnected, Queue: "build"})
	s.PutAgent("other", Agent{ID: "o1", Queue: "build"})
	s.SetJobs("acme", "build", 5, 1, 2)
	s.SetJobs("acme", "gpu", 0, 0, 3)

	code, h, body := getAgentAPI(t, s, "/metrics", testAgentToken)
	if code != 200 || h.Get("Buildkite-Agent-Metrics-Poll-Duration") != "10" || h.Get("Content-Type") != jsonContentType {
		t.Fatalf("GET /v3/metrics: %d %v", code, h)
	}
	want := `{"agents":{"busy":1,"idle":2,"queues":{"build":{"busy":1,"idle":1,"total":2},"default":{"busy":0,"idle":1,"total":1},"deploy":{"busy":0,"idle":1,"total":1},"gpu":{"busy":0,"idle":0,"total":0}},"total":3},` +
		`"cluster":{"name":"linux"},` +
		`"jobs":{"queues":{"build":{"running":1,"scheduled":5,"total":8,"waiting":2},"default":{"running":0,"scheduled":0,"total":0,"waiting":0},"deploy":{"running":0,"scheduled":0,"total":0,"waiting":0},"gpu":{"running":0,"scheduled":0,"total":3,"waiting":3}},"running":1,"scheduled":5,"total":11,"waiting":5},` +
		`"organization":{"slug":"acme"}}`
	if got := jsonString(body); got != want {
		t.Errorf("GET /v3/metrics:\n got %s\nwant %s", got, want)
	}

	code, _, body = getAgentAPI(t, s, "/metrics/queue?name=build", testAgentToken)
	want = `{"agents":{"busy":1,"idle":1,"total":2},"cluster":{"name":"linux"},"jobs":{"running":1,"scheduled":5,"total":8,"waiting":2},"organization":{"slug":"acme"}}`
	if got := jsonString(body); code != 200 || got != want {
		t.Errorf("GET /v3/metrics/queue: %d\n got %s\nwant %s", code, got, want)
	}

	// All zero removes the queue's jobs: with no agent, it is no longer listed.
	s.SetJobs("acme", "gpu", 0, 0, 0)
	s.SetAgentMetricsPollDuration(30)
	_, h, body = getAgentAPI(t, s, "/metrics", testAgentToken)
	if _, ok := body["jobs"].(map[string]any)["queues"].(map[string]any)["gpu"]; ok {
		t.Error("gpu still listed after SetJobs(0, 0, 0)")
	}
	if h.Get("Buildkite-Agent-Metrics-Poll-Duration") != "30" {
		t.Errorf("poll duration %q", h.Get("Buildkite-Agent-Metrics-Poll-Duration"))
	}

	for _, tt := range []struct {
		path, tok string
		code      int
	}{
		{"/metrics", "", 401},
		{"/metrics", "wrong", 401},
		{"/metrics/queue", testAgentToken, 422},
		{"/nope", testAgentToken, 404},
	} {
		if code, _, _ := getAgentAPI(t, s, tt.path, tt.tok); code != tt.code {
			t.Errorf("GET %s with %q: %d, want %d", tt.path, tt.tok, code, tt.code)
		}
	}
	// A REST token is no agent token, nor the reverse.
	s.AddToken("rest-token")
	if code, _, _ := getAgentAPI(t, s, "/metrics", "rest-token"); code != 401 {
		t.Errorf("a REST token on the Agent API: %d", code)
	}
}

func TestAgentMetricsUnclusteredAndFaults(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close)
	s.AddAgentToken(testAgentToken, "acme", "")
	_, _, body := getAgentAPI(t, s, "/metrics", testAgentToken)
	if body["cluster"] != nil {
		t.Errorf("unclustered token: cluster %v, want null", body["cluster"])
	}
	s.InjectFault(Fault{Match: MatchPath("/v3/"), Status: 503, Times: 1})
	if code, _, _ := getAgentAPI(t, s, "/metrics", testAgentToken); code != 503 {
		t.Errorf("fault: %d", code)
	}
	if n := len(s.Requests()); n != 2 {
		t.Errorf("%d requests recorded, want 2", n)
	}
}

// The simulator's backlog rises and falls in every queue.
func TestSimulatorBacklog(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close)
	c := &agentTestClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	queues := []string{"default", "deploy", "macos"}
	sim := NewSimulator(s.Fake, "demo", SimConfig{Queues: queues, Agents: 30, Seed: 3, Now: c.Now})
	s.AddAgentToken(testAgentToken, "demo", "demo-cluster")
	seen := map[string][2]bool{} // queue -> [had no backlog, had a backlog]
	for i := 0; i < 2*backlogPeriod; i++ {
		c.t = c.t.Add(2 * time.Second)
		sim.Step()
		_, _, body := getAgentAPI(t, s, "/metrics", testAgentToken)
		jobs := body["jobs"].(map[string]any)["queues"].(map[string]any)
		for _, q := range queues {
			v := seen[q]
			scheduled := 0.0
			if j, ok := jobs[q].(map[string]any); ok {
				scheduled = j["scheduled"].(float64)
			}
			v[0] = v[0] || scheduled == 0
			v[1] = v[1] || scheduled > 0
			seen[q] = v
		}
	}
	for _, q := range queues {
		if seen[q] != [2]bool{true, true} {
			t.Errorf("queue %s: backlog did not rise and fall: %v", q, seen[q])
		}
	}
}

type agentTestClock struct{ t time.Time }

func (c *agentTestClock) Now() time.Time { return c.t }
