package buildkitetest

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const token = "test-token"

var epoch = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// newTestServer starts a server with a full-scope token and a fixed clock.
func newTestServer(t *testing.T) (*Server, *Clock) {
	t.Helper()
	s := NewServer()
	t.Cleanup(s.Close)
	c := NewClock(epoch)
	s.SetClock(c.Now)
	s.AddToken(token)
	return s, c
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with the token (none when tok is "") and reads the answer.
func do(t *testing.T, s *Server, method, path, tok, body string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return result{resp.StatusCode, resp.Header, b}
}

func (r result) wantMessage(t *testing.T, status int, msg string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); mt != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", r.header.Get("Content-Type"))
	}
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	if m["message"] != msg {
		t.Errorf("message = %q, want %q", m["message"], msg)
	}
}

func ids(t *testing.T, body []byte) []string {
	t.Helper()
	var list []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("list body %q: %v", body, err)
	}
	out := make([]string, len(list))
	for i, a := range list {
		out[i] = a.ID
	}
	return out
}

func agentID(i int) string { return fmt.Sprintf("agent-%05d", i) }

// putAgents adds n connected agents with ascending created_at.
func putAgents(f *Fake, org string, n int) {
	f.AddOrganization(org)
	for i := range n {
		f.PutAgent(org, Agent{ID: agentID(i), Name: agentID(i), CreatedAt: epoch.Add(time.Duration(i) * time.Second)})
	}
}

var linkEntry = regexp.MustCompile(`<([^>]*)>; rel="([a-z]+)"`)

func links(t *testing.T, h http.Header) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, m := range linkEntry.FindAllStringSubmatch(h.Get("Link"), -1) {
		out[m[2]] = m[1]
	}
	return out
}

func TestAuth(t *testing.T) {
	s, _ := newTestServer(t)
	putAgents(s.Fake, "acme", 1)
	s.AddOrganization("other")
	s.AddToken("read-only", ScopeReadAgents)
	s.AddToken("builds-only", "read_builds")
	s.AddTokenForOrgs("acme-only", []string{"acme"})

	forbiddenRead := "Your access token doesn't have the read_agents scope"
	forbiddenWrite := "Your access token doesn't have the write_agents scope"
	tests := []struct {
		name, method, path, header string
		status                     int
		msg                        string
	}{
		{"no header", "GET", "/organizations/acme/agents", "", 401, MsgUnauthorized},
		{"unknown token", "GET", "/organizations/acme/agents", "Bearer nope", 401, MsgUnauthorized},
		{"wrong scheme", "GET", "/organizations/acme/agents", "Token " + token, 401, MsgUnauthorized},
		{"empty bearer", "GET", "/organizations/acme/agents", "Bearer ", 401, MsgUnauthorized},
		{"unknown token on get", "GET", "/organizations/acme/agents/" + agentID(0), "Bearer nope", 401, MsgUnauthorized},
		{"unknown token on action", "PUT", "/organizations/acme/agents/" + agentID(0) + "/stop", "Bearer nope", 401, MsgUnauthorized},
		{"no read scope list", "GET", "/organizations/acme/agents", "Bearer builds-only", 403, forbiddenRead},
		{"no read scope get", "GET", "/organizations/acme/agents/" + agentID(0), "Bearer builds-only", 403, forbiddenRead},
		{"no write scope stop", "PUT", "/organizations/acme/agents/" + agentID(0) + "/stop", "Bearer read-only", 403, forbiddenWrite},
		{"no write scope pause", "PUT", "/organizations/acme/agents/" + agentID(0) + "/pause", "Bearer read-only", 403, forbiddenWrite},
		{"no write scope resume", "PUT", "/organizations/acme/agents/" + agentID(0) + "/resume", "Bearer read-only", 403, forbiddenWrite},
		{"unknown org", "GET", "/organizations/nope/agents", "Bearer " + token, 404, MsgNoOrganization},
		{"org not visible to token", "GET", "/organizations/other/agents", "Bearer acme-only", 404, MsgNoOrganization},
		{"unknown route", "GET", "/organizations/acme/pipelines", "Bearer " + token, 404, "Not Found"},
		{"wrong method", "POST", "/organizations/acme/agents", "Bearer " + token, 405, "Method Not Allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, s.URL+tt.path, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			result{resp.StatusCode, resp.Header, b}.wantMessage(t, tt.status, tt.msg)
		})
	}

	for _, tok := range []string{"read-only", "acme-only", token} {
		if r := do(t, s, "GET", "/organizations/acme/agents", tok, ""); r.status != 200 {
			t.Errorf("token %s: status %d, want 200", tok, r.status)
		}
	}
	if r := do(t, s, "GET", "/organizations/other/agents", token, ""); r.status != 200 || string(r.body) != "[]" {
		t.Errorf("empty org: %d %s, want 200 []", r.status, r.body)
	}
}

func TestListPagination(t *testing.T) {
	tests := []struct {
		agents    int
		perPage   string
		wantSizes []int
	}{
		{0, "", []int{0}},
		{1, "", []int{1}},
		{30, "", []int{30}},
		{31, "", []int{30, 1}},
		{100, "100", []int{100}},
		{101, "100", []int{100, 1}},
		{101, "500", []int{100, 1}}, // clamped to 100
		{45, "0", []int{30, 15}},    // invalid: default
		{45, "-3", []int{30, 15}},
		{45, "abc", []int{30, 15}},
		{5, "2", []int{2, 2, 1}},
		{2537, "100", append(repeat(100, 25), 37)},
		{2537, "", append(repeat(30, 84), 17)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d agents per_page=%q", tt.agents, tt.perPage), func(t *testing.T) {
			s, _ := newTestServer(t)
			s.SetLinkOrigin("") // links this plain HTTP client can follow
			putAgents(s.Fake, "acme", tt.agents)
			path := s.URL + "/organizations/acme/agents"
			if tt.perPage != "" {
				path += "?per_page=" + tt.perPage
			}
			var sizes []int
			var got []string
			for path != "" {
				req, _ := http.NewRequest("GET", path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := s.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, b)
				}
				page := ids(t, b)
				sizes = append(sizes, len(page))
				got = append(got, page...)
				if len(tt.wantSizes) == 1 && resp.Header.Get("Link") != "" {
					t.Errorf("single page has Link %q", resp.Header.Get("Link"))
				}
				path = links(t, resp.Header)["next"]
				if len(sizes) > len(tt.wantSizes) {
					t.Fatalf("more pages than expected: %v", sizes)
				}
			}
			if !reflect.DeepEqual(sizes, tt.wantSizes) {
				t.Errorf("page sizes = %v, want %v", sizes, tt.wantSizes)
			}
			for i, id := range got {
				if id != agentID(i) {
					t.Fatalf("agent %d = %s, want %s (oldest first)", i, id, agentID(i))
				}
			}
			if len(got) != tt.agents {
				t.Errorf("got %d agents, want %d", len(got), tt.agents)
			}
		})
	}
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestListLinkHeader(t *testing.T) {
	s, _ := newTestServer(t)
	s.SetLinkOrigin("") // links naming the host asked
	putAgents(s.Fake, "acme", 101)
	for i := range 101 {
		s.UpdateAgent("acme", agentID(i), func(a *Agent) { a.Version = "3.77.0" })
	}
	base := s.URL + "/organizations/acme/agents"
	u := func(page int) string { return fmt.Sprintf("%s?page=%d&per_page=30&version=3.77.0", base, page) }
	tests := []struct {
		query, want string
	}{
		{"?per_page=30&version=3.77.0", fmt.Sprintf(`<%s>; rel="next", <%s>; rel="last"`, u(2), u(4))},
		{"?page=2&per_page=30&version=3.77.0", fmt.Sprintf(`<%s>; rel="next", <%s>; rel="prev", <%s>; rel="first", <%s>; rel="last"`, u(3), u(1), u(1), u(4))},
		{"?page=4&per_page=30&version=3.77.0", fmt.Sprintf(`<%s>; rel="prev", <%s>; rel="first"`, u(3), u(1))},
		{"?page=9&per_page=30&version=3.77.0", fmt.Sprintf(`<%s>; rel="prev", <%s>; rel="first"`, u(8), u(1))},
	}
	for _, tt := range tests {
		r := do(t, s, "GET", "/organizations/acme/agents"+tt.query, token, "")
		if got := r.header.Get("Link"); got != tt.want {
			t.Errorf("%s: Link =\n %s\nwant\n %s", tt.query, got, tt.want)
		}
	}

	// Past the last page: 200 [] without next.
	r := do(t, s, "GET", "/organizations/acme/agents?page=9", token, "")
	if r.status != 200 || string(r.body) != "[]" {
		t.Errorf("past last page: %d %s, want 200 []", r.status, r.body)
	}
	if _, ok := links(t, r.header)["next"]; ok {
		t.Errorf("past last page has next: %s", r.header.Get("Link"))
	}
	// A single page has no Link header at all, even past its end.
	s.AddOrganization("small")
	s.PutAgent("small", Agent{ID: "a"})
	for _, q := range []string{"", "?page=2"} {
		if r := do(t, s, "GET", "/organizations/small/agents"+q, token, ""); r.header.Values("Link") != nil {
			t.Errorf("single page %q: Link %q", q, r.header.Get("Link"))
		}
	}
	// Invalid page is page 1.
	r = do(t, s, "GET", "/organizations/acme/agents?page=abc", token, "")
	if got := ids(t, r.body); got[0] != agentID(0) {
		t.Errorf("page=abc starts at %s", got[0])
	}
}

func TestTLSServerLinks(t *testing.T) {
	s := NewTLSServer()
	defer s.Close()
	s.AddToken(token)
	putAgents(s.Fake, "acme", 3)
	r := do(t, s, "GET", "/organizations/acme/agents?per_page=1", token, "")
	if next := links(t, r.header)["next"]; !strings.HasPrefix(next, "https://") || !strings.HasPrefix(s.URL, "https://") {
		t.Errorf("next = %q for %s", next, s.URL)
	}
}

func TestListStatesAndGet(t *testing.T) {
	s, _ := newTestServer(t)
	states := []string{StateConnected, StateStopping, StateDisconnected, StateStopped, StateLost, StateNeverConnected, "weird"}
	for i, st := range states {
		s.PutAgent("acme", Agent{ID: st, ConnectionState: st, CreatedAt: epoch.Add(time.Duration(i) * time.Second)})
	}
	r := do(t, s, "GET", "/organizations/acme/agents", token, "")
	if got, want := ids(t, r.body), []string{StateConnected, StateStopping}; !reflect.DeepEqual(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	for _, st := range states {
		r := do(t, s, "GET", "/organizations/acme/agents/"+st, token, "")
		var a map[string]any
		if err := json.Unmarshal(r.body, &a); err != nil || r.status != 200 {
			t.Fatalf("get %s: %d %s", st, r.status, r.body)
		}
		if a["connection_state"] != st {
			t.Errorf("get %s: connection_state %v", st, a["connection_state"])
		}
	}
	do(t, s, "GET", "/organizations/acme/agents/nope", token, "").wantMessage(t, 404, MsgNoAgent)

	s.RemoveAgent("acme", StateConnected)
	do(t, s, "GET", "/organizations/acme/agents/"+StateConnected, token, "").wantMessage(t, 404, MsgNoAgent)
	if got := ids(t, do(t, s, "GET", "/organizations/acme/agents", token, "").body); !reflect.DeepEqual(got, []string{StateStopping}) {
		t.Errorf("after remove listed %v", got)
	}
}

func TestSetConnectionState(t *testing.T) {
	s, c := newTestServer(t)
	s.PutAgent("acme", Agent{ID: "a"})
	c.Advance(time.Minute)
	for _, tt := range []struct {
		state string
		field func(Agent) *time.Time
	}{
		{StateLost, func(a Agent) *time.Time { return a.LostAt }},
		{StateStopped, func(a Agent) *time.Time { return a.StoppedAt }},
		{StateDisconnected, func(a Agent) *time.Time { return a.DisconnectedAt }},
		{StateConnected, func(a Agent) *time.Time { return a.ConnectedAt }},
	} {
		s.SetConnectionState("acme", "a", tt.state)
		a, _ := s.Agent("acme", "a")
		if a.ConnectionState != tt.state || tt.field(a) == nil || !tt.field(a).Equal(c.Now()) {
			t.Errorf("%s: state %s, timestamp %v", tt.state, a.ConnectionState, tt.field(a))
		}
		listed := len(ids(t, do(t, s, "GET", "/organizations/acme/agents", token, "").body)) == 1
		if want := tt.state == StateConnected; listed != want {
			t.Errorf("%s: listed = %v", tt.state, listed)
		}
	}
	s.SetConnectionState("acme", "missing", StateLost) // no-op, no panic
}

func TestAgentJSON(t *testing.T) {
	s, _ := newTestServer(t)
	started := epoch.Add(-90*time.Second + 123*time.Millisecond)
	finished := epoch.Add(-time.Hour)
	s.PutAgent("acme", Agent{
		ID: "0b461f65", Name: "my-agent", Hostname: "some.server", IPAddress: "144.132.19.12",
		UserAgent: "buildkite-agent/3.77.0.1 (linux; amd64)", Version: "3.77.0",
		OSID: "linux", Arch: "amd64", Queue: "default",
		MetaData:  []string{"queue=default", "os=linux", "spot"},
		Priority:  ptr(3),
		CreatedAt: epoch.Add(-24 * time.Hour), ConnectedAt: ptr(epoch.Add(-time.Hour)),
		LastJobFinishedAt: &finished,
		Job:               &Job{ID: "cd164055", State: "running", StartedAt: &started},
		Extra:             map[string]any{"cluster_id": "c-1", "paused_by": Omit},
	})
	r := do(t, s, "GET", "/organizations/acme/agents/0b461f65", token, "")
	if mt, _, _ := mime.ParseMediaType(r.header.Get("Content-Type")); mt != "application/json" {
		t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
	}
	var a map[string]any
	if err := json.Unmarshal(r.body, &a); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"id": "0b461f65", "name": "my-agent", "connection_state": "connected", "hostname": "some.server",
		"ip_address": "144.132.19.12", "version": "3.77.0", "os_id": "linux", "arch": "amd64", "queue": "default",
		"created_at": "2024-04-30T12:00:00.000Z", "connected_at": "2024-05-01T11:00:00.000Z",
		"last_job_finished_at": "2024-05-01T11:00:00.000Z", "priority": 3.0,
		"disconnected_at": nil, "lost_at": nil, "stopped_at": nil, "cluster_id": "c-1",
		"url":        s.HTTPServer.URL + "/v2/organizations/acme/agents/0b461f65",
		"web_url":    "https://buildkite.com/organizations/acme/agents/0b461f65",
		"graphql_id": "QWdlbnQtLS0wYjQ2MWY2NQ==",
		"user_agent": "buildkite-agent/3.77.0.1 (linux; amd64)",
	}
	for k, v := range want {
		if got, ok := a[k]; !ok || !reflect.DeepEqual(got, v) {
			t.Errorf("%s = %#v (present %v), want %#v", k, got, ok, v)
		}
	}
	// The paused* members only on a paused agent, as in every published
	// example.
	for _, k := range []string{"paused", "paused_at", "paused_by", "paused_note", "paused_timeout_in_minutes"} {
		if _, ok := a[k]; ok {
			t.Errorf("%s present on an agent that is not paused", k)
		}
	}
	if !reflect.DeepEqual(a["meta_data"], []any{"queue=default", "os=linux", "spot"}) {
		t.Errorf("meta_data = %v", a["meta_data"])
	}
	if cr, ok := a["creator"].(map[string]any); !ok || cr["id"] == nil {
		t.Errorf("creator = %v", a["creator"])
	}
	job, _ := a["job"].(map[string]any)
	for k, v := range map[string]any{"id": "cd164055", "state": "running", "started_at": "2024-05-01T11:58:30.123Z", "type": "script", "finished_at": nil} {
		if !reflect.DeepEqual(job[k], v) {
			t.Errorf("job.%s = %#v, want %#v", k, job[k], v)
		}
	}
	for _, k := range []string{"graphql_id", "name", "build_url", "web_url", "created_at", "scheduled_at"} {
		if s, _ := job[k].(string); s == "" {
			t.Errorf("job.%s empty", k)
		}
	}

	// Older API: no os_id/arch/queue; nil slices and pointers as [] and null; paused fields.
	s.PutAgent("acme", Agent{ID: "old", Paused: true, PausedAt: &started, PausedTimeoutInMinutes: 5,
		ClusterQueueID: "q-1", Extra: map[string]any{"priority": "high"}})
	a = nil
	json.Unmarshal(do(t, s, "GET", "/organizations/acme/agents/old", token, "").body, &a)
	if a["queue"] != "default" { // today's API reports the queue served
		t.Errorf("queue = %v, want default", a["queue"])
	}
	s.SetReportServedQueue(false)
	a = nil
	json.Unmarshal(do(t, s, "GET", "/organizations/acme/agents/old", token, "").body, &a)
	for _, k := range []string{"os_id", "arch", "queue"} {
		if _, ok := a[k]; ok {
			t.Errorf("%s present for empty value", k)
		}
	}
	if a["job"] != nil || a["last_job_finished_at"] != nil || !reflect.DeepEqual(a["meta_data"], []any{}) {
		t.Errorf("job %v, last_job_finished_at %v, meta_data %v", a["job"], a["last_job_finished_at"], a["meta_data"])
	}
	if a["paused"] != true || a["paused_timeout_in_minutes"] != 5.0 || a["paused_by"] == nil || a["paused_note"] != nil {
		t.Errorf("paused fields: %v %v %v %v", a["paused"], a["paused_timeout_in_minutes"], a["paused_by"], a["paused_note"])
	}
	if a["priority"] != "high" {
		t.Errorf("Extra override: priority = %v", a["priority"])
	}
	if w, _ := a["web_url"].(string); !strings.Contains(w, "/queues/q-1/agents/old") {
		t.Errorf("web_url = %s", w)
	}
}

func TestStoreCopies(t *testing.T) {
	f := NewFake()
	meta := []string{"queue=a"}
	f.PutAgent("o", Agent{ID: "x", MetaData: meta})
	meta[0] = "changed"
	a, _ := f.Agent("o", "x")
	a.MetaData[0] = "changed too"
	if b, _ := f.Agent("o", "x"); b.MetaData[0] != "queue=a" || b.ConnectionState != StateConnected {
		t.Errorf("stored agent aliased or not defaulted: %+v", b)
	}
	if !f.UpdateAgent("o", "x", func(a *Agent) { a.Name = "n"; a.ID = "ignored" }) {
		t.Error("UpdateAgent on existing agent = false")
	}
	if f.UpdateAgent("o", "nope", func(*Agent) {}) {
		t.Error("UpdateAgent on missing agent = true")
	}
	f.PutAgent("o", Agent{ID: "a"})
	got := f.Agents("o")
	if len(got) != 2 || got[0].ID != "a" || got[1].ID != "x" || got[1].Name != "n" {
		t.Errorf("Agents = %+v", got)
	}
}

func TestFilters(t *testing.T) {
	s, _ := newTestServer(t)
	s.PutAgent("acme", Agent{ID: "1", Name: "a1", Hostname: "h1", Version: "3.77.0", ClusterQueueID: "q1"})
	s.PutAgent("acme", Agent{ID: "2", Name: "a2", Hostname: "h1", Version: "3.76.0", ClusterQueueID: "q2"})
	s.PutAgent("acme", Agent{ID: "3", Name: "a3", Hostname: "h2", Version: "3.77.0"})
	s.PutAgent("acme", Agent{ID: "4", Name: "a1", Hostname: "h1", Version: "3.77.0", ConnectionState: StateLost})
	tests := []struct {
		query string
		want  []string
	}{
		{"name=a1", []string{"1"}},
		{"hostname=h1", []string{"1", "2"}},
		{"version=3.77.0", []string{"1", "3"}},
		{"version=3.77", []string{}}, // exact match only
		{"cluster_queue_id=q2", []string{"2"}},
		{"hostname=h1&version=3.77.0", []string{"1"}},
		{"name=", []string{"1", "2", "3"}}, // blank is no filter
		{"name=nope", []string{}},
	}
	for _, tt := range tests {
		r := do(t, s, "GET", "/organizations/acme/agents?"+tt.query, token, "")
		if got := ids(t, r.body); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.query, got, tt.want)
		}
	}
}

func TestActions(t *testing.T) {
	busy := func() *Job { return &Job{ID: "j", State: "running", StartedAt: ptr(epoch)} }
	tests := []struct {
		name   string
		agent  Agent
		action string
		body   string
		status int
		msg    string
		check  func(t *testing.T, a Agent)
		listed bool
	}{
		{name: "stop idle", agent: Agent{}, action: "stop", status: 204,
			check: func(t *testing.T, a Agent) {
				if a.ConnectionState != StateStopped || a.StoppedAt == nil {
					t.Errorf("state %s stopped_at %v", a.ConnectionState, a.StoppedAt)
				}
			}},
		{name: "stop busy default force", agent: Agent{Job: busy()}, action: "stop", body: "{}", status: 204,
			check: func(t *testing.T, a Agent) {
				if a.ConnectionState != StateStopped || a.Job != nil || a.LastJobFinishedAt == nil {
					t.Errorf("state %s job %v", a.ConnectionState, a.Job)
				}
			}},
		{name: "stop busy force true", agent: Agent{Job: busy()}, action: "stop", body: `{"force":true}`, status: 204,
			check: func(t *testing.T, a Agent) {
				if a.ConnectionState != StateStopped {
					t.Errorf("state %s", a.ConnectionState)
				}
			}},
		{name: "stop busy force false", agent: Agent{Job: busy()}, action: "stop", body: `{"force":false}`, status: 204, listed: true,
			check: func(t *testing.T, a Agent) {
				if a.ConnectionState != StateStopping || a.Job == nil {
					t.Errorf("state %s job %v", a.ConnectionState, a.Job)
				}
			}},
		{name: "stop idle force false", agent: Agent{}, action: "stop", body: `{"force":false}`, status: 204,
			check: func(t *testing.T, a Agent) {
				if a.ConnectionState != StateStopped {
					t.Errorf("state %s", a.ConnectionState)
				}
			}},
		{name: "stop stopping", agent: Agent{ConnectionState: StateStopping}, action: "stop", status: 400, msg: MsgCanOnlyStop, listed: true},
		{name: "stop disconnected", agent: Agent{ConnectionState: StateDisconnected}, action: "stop", status: 400, msg: MsgCanOnlyStop},
		{name: "stop bad json", agent: Agent{}, action: "stop", body: `{"force":`, status: 400, msg: "Problems parsing JSON", listed: true},
		{name: "pause default timeout", agent: Agent{}, action: "pause", status: 204, listed: true,
			check: func(t *testing.T, a Agent) {
				if !a.Paused || a.PausedTimeoutInMinutes != 5 || a.PausedAt == nil || !a.PausedAt.Equal(epoch) || a.PausedNote != "" {
					t.Errorf("paused %v timeout %d at %v note %q", a.Paused, a.PausedTimeoutInMinutes, a.PausedAt, a.PausedNote)
				}
			}},
		{name: "pause with note", agent: Agent{Job: busy()}, action: "pause", body: `{"note":"why","timeout_in_minutes":60}`, status: 204, listed: true,
			check: func(t *testing.T, a Agent) {
				if !a.Paused || a.PausedTimeoutInMinutes != 60 || a.PausedNote != "why" || a.Job == nil {
					t.Errorf("paused %v timeout %d note %q", a.Paused, a.PausedTimeoutInMinutes, a.PausedNote)
				}
			}},
		{name: "pause paused", agent: Agent{Paused: true}, action: "pause", status: 422, msg: MsgAlreadyPaused, listed: true},
		{name: "pause stopping", agent: Agent{ConnectionState: StateStopping}, action: "pause", status: 422, msg: MsgOnlyConnectedPause, listed: true},
		{name: "pause lost", agent: Agent{ConnectionState: StateLost}, action: "pause", status: 422, msg: MsgOnlyConnectedPause},
		{name: "resume", agent: Agent{Paused: true, PausedAt: ptr(epoch), PausedNote: "n", PausedTimeoutInMinutes: 5}, action: "resume", body: "{}", status: 204, listed: true,
			check: func(t *testing.T, a Agent) {
				if a.Paused || a.PausedAt != nil || a.PausedNote != "" {
					t.Errorf("still paused: %+v", a)
				}
			}},
		{name: "resume not paused", agent: Agent{}, action: "resume", status: 422, msg: MsgNotPaused, listed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t)
			tt.agent.ID = "a"
			s.PutAgent("acme", tt.agent)
			r := do(t, s, "PUT", "/organizations/acme/agents/a/"+tt.action, token, tt.body)
			if tt.status == 204 {
				if r.status != 204 || len(r.body) != 0 {
					t.Errorf("status %d body %q, want 204 empty", r.status, r.body)
				}
			} else {
				r.wantMessage(t, tt.status, tt.msg)
			}
			a, _ := s.Agent("acme", "a")
			if tt.check != nil {
				tt.check(t, a)
			}
			if tt.status != 204 {
				want := tt.agent.clone()
				want.CreatedAt, want.ConnectionState = a.CreatedAt, a.ConnectionState
				if !reflect.DeepEqual(a, want) || (tt.agent.ConnectionState != "" && a.ConnectionState != tt.agent.ConnectionState) {
					t.Errorf("failed action changed the agent: %+v", a)
				}
			}
			listed := len(ids(t, do(t, s, "GET", "/organizations/acme/agents", token, "").body)) == 1
			if listed != tt.listed {
				t.Errorf("listed = %v, want %v", listed, tt.listed)
			}
		})
	}
	s, _ := newTestServer(t)
	s.AddOrganization("acme")
	for _, act := range []string{"stop", "pause", "resume"} {
		do(t, s, "PUT", "/organizations/acme/agents/nope/"+act, token, "").wantMessage(t, 404, MsgNoAgent)
		do(t, s, "GET", "/organizations/acme/agents/nope/"+act, token, "").wantMessage(t, 405, "Method Not Allowed")
	}
}

func TestRateLimit(t *testing.T) {
	s, c := newTestServer(t)
	putAgents(s.Fake, "acme", 1)
	s.AddOrganization("other")
	s.SetRateLimit(3)
	type want struct {
		status           int
		remaining, reset int
	}
	check := func(r result, w want) {
		t.Helper()
		if r.status != w.status {
			t.Errorf("status %d, want %d", r.status, w.status)
		}
		for h, v := range map[string]string{
			"RateLimit-Scope": "rest", "RateLimit-Limit": "3",
			"RateLimit-Remaining": strconv.Itoa(w.remaining), "RateLimit-Reset": strconv.Itoa(w.reset),
			"RateLimit-User-Scope": "rest_user", "RateLimit-User-Limit": strconv.Itoa(UnlimitedRateLimit),
		} {
			if got := r.header.Get(h); got != v {
				t.Errorf("%s = %q, want %q", h, got, v)
			}
		}
	}
	check(do(t, s, "GET", "/organizations/acme/agents", token, ""), want{200, 2, 60})
	c.Advance(10 * time.Second)
	check(do(t, s, "GET", "/organizations/acme/agents", "bad", ""), want{401, 1, 50}) // 401s count
	c.Advance(500 * time.Millisecond)
	check(do(t, s, "GET", "/organizations/acme/agents/"+agentID(0), token, ""), want{200, 0, 50}) // rounded up
	// Other organizations have their own window.
	if r := do(t, s, "GET", "/organizations/other/agents", token, ""); r.status != 200 || r.header.Get("RateLimit-Remaining") != "2" {
		t.Errorf("other org: %d remaining %s", r.status, r.header.Get("RateLimit-Remaining"))
	}
	c.Advance(9500 * time.Millisecond)
	r := do(t, s, "GET", "/organizations/acme/agents", token, "")
	check(r, want{429, -1, 40})
	var body map[string]any
	json.Unmarshal(r.body, &body)
	wantBody := map[string]any{
		"message": "You have exceeded your API rate limit. Please wait 40 seconds before making more requests.",
		"scope":   "rest", "limit": 3.0, "current": 4.0, "reset": 40.0,
	}
	if !reflect.DeepEqual(body, wantBody) {
		t.Errorf("429 body = %v, want %v", body, wantBody)
	}
	check(do(t, s, "PUT", "/organizations/acme/agents/"+agentID(0)+"/stop", token, ""), want{429, -2, 40})
	if a, _ := s.Agent("acme", agentID(0)); a.ConnectionState != StateConnected {
		t.Error("rate-limited stop changed the agent")
	}
	c.Advance(39 * time.Second) // 59 s into the window
	check(do(t, s, "GET", "/organizations/acme/agents", token, ""), want{429, -3, 1})
	c.Advance(time.Second) // a new window
	check(do(t, s, "GET", "/organizations/acme/agents", token, ""), want{200, 2, 60})

	s.SetRateLimit(0)
	r = do(t, s, "GET", "/organizations/acme/agents", token, "")
	if r.status != 200 || r.header.Get("RateLimit-Limit") != strconv.Itoa(UnlimitedRateLimit) || r.header.Get("RateLimit-Reset") == "" {
		t.Errorf("unlimited: %d %v", r.status, r.header)
	}
}

func TestUserRateLimit(t *testing.T) {
	s, _ := newTestServer(t)
	s.AddToken("other-token")
	s.AddOrganization("acme")
	s.SetUserRateLimit(1)
	do(t, s, "GET", "/organizations/acme/agents", token, "")
	r := do(t, s, "GET", "/organizations/acme/agents", token, "")
	var body map[string]any
	json.Unmarshal(r.body, &body)
	if r.status != 429 || body["scope"] != "rest_user" || r.header.Get("RateLimit-User-Remaining") != "-1" {
		t.Errorf("user limit: %d %v %v", r.status, body, r.header)
	}
	if r := do(t, s, "GET", "/organizations/acme/agents", "other-token", ""); r.status != 200 {
		t.Errorf("other token limited: %d", r.status)
	}
}

func TestRequests(t *testing.T) {
	s, c := newTestServer(t)
	s.AddOrganization("acme")
	do(t, s, "GET", "/organizations/acme/agents?per_page=5", token, "")
	c.Advance(time.Second)
	do(t, s, "PUT", "/organizations/acme/agents/x/stop", "", "")
	got := s.Requests()
	host := strings.TrimPrefix(s.HTTPServer.URL, "http://")
	want := []Request{
		{Method: "GET", Path: "/v2/organizations/acme/agents", RawQuery: "per_page=5", Host: host, Authorization: "Bearer " + token, Time: epoch},
		{Method: "PUT", Path: "/v2/organizations/acme/agents/x/stop", Host: host, Time: epoch.Add(time.Second)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Requests = %+v\nwant %+v", got, want)
	}
	s.ResetRequests()
	if n := len(s.Requests()); n != 0 {
		t.Errorf("after reset: %d requests", n)
	}
}

func TestOnListPage(t *testing.T) {
	s, _ := newTestServer(t)
	putAgents(s.Fake, "acme", 4)
	var calls []string
	s.OnListPage(func(org string, page int) {
		calls = append(calls, fmt.Sprintf("%s:%d", org, page))
		if page == 2 {
			// An older agent joins the front while the client pages: page 2 repeats one.
			s.PutAgent(org, Agent{ID: "early", CreatedAt: epoch.Add(-time.Hour)})
		}
	})
	var got []string
	for p := 1; p <= 3; p++ {
		got = append(got, ids(t, do(t, s, "GET", fmt.Sprintf("/organizations/acme/agents?per_page=2&page=%d", p), token, "").body)...)
	}
	if want := []string{agentID(0), agentID(1), agentID(1), agentID(2), agentID(3)}; !reflect.DeepEqual(got, want) {
		t.Errorf("paged %v, want %v", got, want)
	}
	if want := []string{"acme:1", "acme:2", "acme:3"}; !reflect.DeepEqual(calls, want) {
		t.Errorf("hook calls %v, want %v", calls, want)
	}
	s.OnListPage(nil)
	do(t, s, "GET", "/organizations/acme/agents", token, "")
	if len(calls) != 3 {
		t.Error("hook called after removal")
	}
}

// TestConcurrency exercises the fake from many goroutines; its value is under -race.
func TestConcurrency(t *testing.T) {
	s, _ := newTestServer(t)
	sim := NewSimulator(s.Fake, "acme", SimConfig{Agents: 50, Seed: 1, Now: func() time.Time { return epoch }})
	s.SetRateLimit(1000)
	remove := s.InjectFault(Fault{Match: MatchPage(2), Times: 5, Status: 502})
	defer remove()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				path := fmt.Sprintf("/organizations/acme/agents?page=%d&per_page=10", 1+(i+j)%4)
				req, _ := http.NewRequest("GET", s.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				if resp, err := s.Client().Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				s.Agents("acme")
			}
		}()
	}
	for range 20 {
		sim.Step()
	}
	wg.Wait()
	if n := len(s.Requests()); n != 80 {
		t.Errorf("recorded %d requests, want 80", n)
	}
}
