package agentmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/agentmetrics"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

const agentToken = "bkct_agent_secret_0123456789abcdef"

type observed struct {
	mu    sync.Mutex
	calls []string
}

func (o *observed) ObserveRequest(org string, code int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, org+" "+http.StatusText(code))
}

func newClient(t *testing.T, base string, obs client.Observer) *agentmetrics.Client {
	t.Helper()
	c, err := agentmetrics.New(agentmetrics.Config{BaseURL: base, Token: client.StaticToken(agentToken), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestMetricsFromFake(t *testing.T) {
	fake := buildkitetest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAgentToken(agentToken, "acme", "linux")
	fake.PutAgent("acme", buildkitetest.Agent{ID: "a1", Queue: "build", Job: &buildkitetest.Job{ID: "j1", State: "running"}})
	fake.PutAgent("acme", buildkitetest.Agent{ID: "a2", Queue: "build"})
	fake.PutAgent("acme", buildkitetest.Agent{ID: "a3", MetaData: []string{"queue=deploy", "queue=build"}})
	fake.PutAgent("acme", buildkitetest.Agent{ID: "a4", ConnectionState: buildkitetest.StateLost, Queue: "build"})
	fake.SetJobs("acme", "build", 4, 1, 2)
	fake.SetJobs("acme", "gpu", 3, 0, 0)

	obs := &observed{}
	c := newClient(t, fake.AgentURL, obs)
	m, err := c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.Organization != "acme" || m.Cluster != "linux" || m.PollDuration != 10*time.Second {
		t.Errorf("org %q cluster %q poll %v", m.Organization, m.Cluster, m.PollDuration)
	}
	want := []agentmetrics.Queue{
		{Name: "build", Agents: agentmetrics.AgentCounts{Idle: 2, Busy: 1, Total: 3}, Jobs: agentmetrics.JobCounts{Scheduled: 4, Running: 1, Waiting: 2, Total: 7}},
		{Name: "deploy", Agents: agentmetrics.AgentCounts{Idle: 1, Total: 1}},
		{Name: "gpu", Jobs: agentmetrics.JobCounts{Scheduled: 3, Total: 3}},
	}
	if len(m.Queues) != len(want) {
		t.Fatalf("queues %+v, want %+v", m.Queues, want)
	}
	for i := range want {
		if m.Queues[i] != want[i] {
			t.Errorf("queue %d: %+v, want %+v", i, m.Queues[i], want[i])
		}
	}
	if m.Agents != (agentmetrics.AgentCounts{Idle: 2, Busy: 1, Total: 3}) || m.Jobs.Total != 10 {
		t.Errorf("totals: agents %+v jobs %+v", m.Agents, m.Jobs)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/v3/metrics" || reqs[0].Authorization != "Token "+agentToken {
		t.Errorf("requests: %+v", reqs)
	}
	if len(obs.calls) != 1 || obs.calls[0] != "acme OK" {
		t.Errorf("observer heard %v", obs.calls)
	}

	q, err := c.QueueMetrics(context.Background(), "build")
	if err != nil {
		t.Fatal(err)
	}
	if q.Queue != "build" || q.Jobs.Waiting != 2 || q.Agents.Busy != 1 || q.Organization != "acme" {
		t.Errorf("queue metrics %+v", q)
	}
	if r := fake.Requests()[1]; r.Path != "/v3/metrics/queue" || r.RawQuery != "name=build" {
		t.Errorf("queue request %+v", r)
	}
}

func TestErrorsWrapSentinelsWithoutToken(t *testing.T) {
	fake := buildkitetest.NewServer()
	t.Cleanup(fake.Close)
	obs := &observed{}
	c := newClient(t, fake.AgentURL, obs)
	_, err := c.Metrics(context.Background())
	var ae *agentmetrics.Error
	if !errors.Is(err, client.ErrUnauthorized) || !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown token: %v", err)
	}
	if strings.Contains(err.Error(), agentToken) {
		t.Errorf("the token is in the error: %v", err)
	}
	// Before any answer named the organization, requests are counted under
	// the client's name, not "".
	if len(obs.calls) != 1 || obs.calls[0] != agentmetrics.DefaultName+" Unauthorized" {
		t.Errorf("observer heard %v", obs.calls)
	}

	fake.AddAgentToken(agentToken, "acme", "")
	for _, tt := range []struct {
		fault buildkitetest.Fault
		want  error
	}{
		{buildkitetest.Fault{Status: 500, Times: 1}, client.ErrServer},
		{buildkitetest.Fault{Status: 403, Times: 1, Body: `{"message":"echo ` + agentToken + `"}`}, client.ErrForbidden},
		{buildkitetest.Fault{Status: 429, Times: 1}, client.ErrRateLimited},
		{buildkitetest.Fault{Malformed: true, Times: 1}, client.ErrMalformed},
		{buildkitetest.Fault{ContentType: "text/html", Times: 1}, client.ErrMalformed},
		{buildkitetest.Fault{OversizeBytes: 5 << 20, Times: 1}, client.ErrMalformed},
		{buildkitetest.Fault{Status: 200, Body: `{"agents":{},"jobs":{}}`, Times: 1}, client.ErrMalformed},
	} {
		fake.InjectFault(tt.fault)
		_, err := c.Metrics(context.Background())
		if !errors.Is(err, tt.want) {
			t.Errorf("fault %+v: %v, want %v", tt.fault, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), agentToken) {
			t.Errorf("the token is in the error: %v", err)
		}
	}
	m, err := c.Metrics(context.Background())
	if err != nil || m.Cluster != "" {
		t.Errorf("unclustered token: %+v, %v", m, err)
	}
}

// The token goes to the configured host only: a redirect elsewhere is
// refused before anything is sent there.
func TestNoRedirectElsewhere(t *testing.T) {
	var leaked bool
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = true
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v3/metrics", http.StatusFound)
	}))
	t.Cleanup(srv.Close)
	_, err := newClient(t, srv.URL+"/v3", nil).Metrics(context.Background())
	if !errors.Is(err, client.ErrUnsafeLink) {
		t.Errorf("redirect to another host: %v", err)
	}
	if leaked {
		t.Error("the request followed the redirect to another host")
	}
}

func TestContextAndConfig(t *testing.T) {
	fake := buildkitetest.NewServer()
	t.Cleanup(fake.Close)
	fake.AddAgentToken(agentToken, "acme", "")
	fake.InjectFault(buildkitetest.Fault{Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if _, err := newClient(t, fake.AgentURL, nil).Metrics(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
	if time.Since(began) > 5*time.Second {
		t.Error("the deadline did not end the request")
	}

	for _, bad := range []string{"ftp://x", "http://user:pw@host/v3", "http:///v3", "http://h/v3?x=1"} {
		if _, err := agentmetrics.New(agentmetrics.Config{BaseURL: bad, Token: client.StaticToken("x")}); err == nil {
			t.Errorf("BaseURL %q accepted", bad)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error shows credentials: %v", err)
		}
	}
	if _, err := agentmetrics.New(agentmetrics.Config{}); err == nil {
		t.Error("no token accepted")
	}
	c, _ := agentmetrics.New(agentmetrics.Config{BaseURL: fake.AgentURL, Token: client.StaticToken("two words")})
	if _, err := c.Metrics(context.Background()); err == nil || len(fake.Requests()) != 1 {
		t.Errorf("a token with a space was sent: %v", err)
	}
}

func TestParsePollDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"": 0, "10": 10 * time.Second, " 30 ": 30 * time.Second, "2.5": 2500 * time.Millisecond,
		"0": 0, "-5": 0, "NaN": 0, "abc": 0, "1e9": agentmetrics.MaxPollDuration,
	} {
		if got := agentmetrics.ParsePollDuration(in); got != want {
			t.Errorf("ParsePollDuration(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestDecodeMetrics(t *testing.T) {
	m, err := agentmetrics.DecodeMetrics([]byte(`{
		"agents": {"idle": 1, "busy": 2, "total": 3, "queues": {"a": {"idle": 1, "busy": 2, "total": 3}}},
		"jobs": {"scheduled": 5, "running": 2, "waiting": 1, "total": 8, "queues": {"b": {"scheduled": 5, "running": null}}},
		"organization": {"slug": "acme"}, "cluster": null, "extra": [1, 2]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Queues) != 2 || m.Queues[0].Name != "a" || m.Queues[1].Jobs.Scheduled != 5 || m.Cluster != "" {
		t.Errorf("%+v", m)
	}
	for _, bad := range []string{
		``, `[]`, `null`, `{"organization": {"slug": ""}}`, `{}`,
		`{"organization": {"slug": "a"}, "jobs": {"queues": {"q": {"waiting": -1}}}}`,
		`{"organization": {"slug": "a"}, "jobs": {"queues": {"q": {"waiting": 1.5}}}}`,
		`{"organization": {"slug": "a"}, "agents": {"queues": {"q": {"busy": "2"}}}}`,
	} {
		if _, err := agentmetrics.DecodeMetrics([]byte(bad)); !errors.Is(err, client.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", bad, err)
		}
	}
}

// TestNameUntilOrganizationKnownAndRequests: requests before any answer
// named the organization are observed under Config.Name, later ones under
// the organization; every result says how many requests it made.
func TestNameUntilOrganizationKnownAndRequests(t *testing.T) {
	fake := buildkitetest.NewServer()
	t.Cleanup(fake.Close)
	obs := &observed{}
	c, err := agentmetrics.New(agentmetrics.Config{BaseURL: fake.AgentURL, Token: client.StaticToken(agentToken), Observer: obs, Name: "linux-token"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Metrics(context.Background())
	if err == nil || m == nil || m.Requests != 1 {
		t.Fatalf("unknown token: %+v, %v", m, err)
	}
	fake.AddAgentToken(agentToken, "acme", "linux")
	if m, err = c.Metrics(context.Background()); err != nil || m.Requests != 1 {
		t.Fatalf("%+v, %v", m, err)
	}
	if q, err := c.QueueMetrics(context.Background(), "build"); err != nil || q.Requests != 1 {
		t.Fatalf("%+v, %v", q, err)
	}
	want := "[linux-token Unauthorized acme OK acme OK]"
	if got := fmt.Sprint(obs.calls); got != want {
		t.Fatalf("observer heard %s, want %s", got, want)
	}
}
