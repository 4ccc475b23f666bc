package buildkitetest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestClustersEndpoints(t *testing.T) {
	s, c := newTestServer(t)
	linux := s.AddCluster("acme", "linux", "default", "deploy")
	c.Advance(time.Second)
	small := s.AddCluster("acme", "Default cluster", "linux-small")
	c.Advance(time.Second)
	s.AddCluster("acme", "empty", "")
	deploy := QueueID(linux, "deploy")
	if !s.SetDispatchPaused("acme", linux, deploy, true, "freeze") {
		t.Fatal("SetDispatchPaused: no such queue")
	}

	r := do(t, s, "GET", "/organizations/acme/clusters", token, "")
	if r.status != 200 {
		t.Fatalf("clusters: %d %s", r.status, r.body)
	}
	var clusters []map[string]any
	if err := json.Unmarshal(r.body, &clusters); err != nil {
		t.Fatal(err)
	}
	if len(clusters) != 3 || clusters[0]["id"] != linux || clusters[1]["id"] != small || clusters[0]["name"] != "linux" {
		t.Fatalf("clusters %s", r.body)
	}
	if clusters[0]["default_queue_id"] != QueueID(linux, "default") || clusters[2]["default_queue_id"] != nil {
		t.Errorf("default_queue_id: %v, %v", clusters[0]["default_queue_id"], clusters[2]["default_queue_id"])
	}
	if u, _ := clusters[0]["queues_url"].(string); u != s.URL+"/organizations/acme/clusters/"+linux+"/queues" {
		t.Errorf("queues_url %s", u)
	}

	r = do(t, s, "GET", "/organizations/acme/clusters/"+linux+"/queues", token, "")
	var queues []map[string]any
	if err := json.Unmarshal(r.body, &queues); err != nil || r.status != 200 || len(queues) != 2 {
		t.Fatalf("queues: %d %s", r.status, r.body)
	}
	byKey := map[string]map[string]any{}
	for _, q := range queues {
		byKey[q["key"].(string)] = q
	}
	if q := byKey["deploy"]; q["id"] != deploy || q["dispatch_paused"] != true || q["dispatch_paused_at"] != "2024-05-01T12:00:02.000Z" ||
		q["dispatch_paused_note"] != "freeze" || q["dispatch_paused_by"] == nil {
		t.Errorf("paused queue %v", q)
	}
	if q := byKey["default"]; q["dispatch_paused"] != false || q["dispatch_paused_at"] != nil || q["dispatch_paused_by"] != nil {
		t.Errorf("queue %v", q)
	}
	s.SetDispatchPaused("acme", linux, deploy, false, "")
	if q := s.Queues("acme", linux); q[1].DispatchPaused || q[1].DispatchPausedAt != nil {
		t.Errorf("resumed queue %+v", q[1])
	}

	for _, tt := range []struct {
		path, tok string
		status    int
		msg       string
	}{
		{"/organizations/acme/clusters/nosuch/queues", token, 404, MsgNoCluster},
		{"/organizations/nosuch/clusters", token, 404, MsgNoOrganization},
		{"/organizations/acme/clusters", "agents-only", 403, "Your access token doesn't have the read_clusters scope"},
		{"/organizations/acme/clusters/" + linux + "/queues", "agents-only", 403, "Your access token doesn't have the read_clusters scope"},
		{"/organizations/acme/clusters/" + linux, token, 404, "Not Found"},
	} {
		s.AddToken("agents-only", ScopeReadAgents)
		do(t, s, "GET", tt.path, tt.tok, "").wantMessage(t, tt.status, tt.msg)
	}
	// The agents endpoints still work without read_clusters.
	if r := do(t, s, "GET", "/organizations/acme/agents", "agents-only", ""); r.status != 200 {
		t.Errorf("agents without read_clusters: %d", r.status)
	}
}

func TestClustersPagination(t *testing.T) {
	s, c := newTestServer(t)
	var want []string
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		want = append(want, s.AddCluster("acme", name, "default"))
		c.Advance(time.Second)
	}
	var got []string
	for page := 1; page <= 3; page++ {
		r := do(t, s, "GET", "/organizations/acme/clusters?per_page=2&page="+string(rune('0'+page)), token, "")
		got = append(got, ids(t, r.body)...)
		l := links(t, r.header)
		if _, ok := l["next"]; ok != (page < 3) {
			t.Errorf("page %d: links %v", page, l)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("paged clusters %v, want %v", got, want)
	}
	if r := do(t, s, "GET", "/organizations/acme/clusters", token, ""); r.header.Get("Link") != "" {
		t.Errorf("one page, yet Link %q", r.header.Get("Link"))
	}
}

func TestAgentClusterWebURLAndQueue(t *testing.T) {
	s, _ := newTestServer(t)
	linux := s.AddCluster("acme", "linux", "default", "deploy")
	small := s.AddCluster("acme", "Default cluster", "linux-small")
	for _, tt := range []struct {
		agent     Agent
		web, want string // web_url after /organizations/acme/; queue ("-" absent)
	}{
		{Agent{ID: "u1"}, "agents/u1", "default"},
		{Agent{ID: "u2", MetaData: []string{"queue=build"}}, "agents/u2", "-"},
		{Agent{ID: "u3", Queue: "build"}, "agents/u3", "build"},
		{Agent{ID: "c1", ClusterQueueID: QueueID(linux, "deploy"), MetaData: []string{"queue=deploy"}}, "clusters/" + linux + "/queues/" + QueueID(linux, "deploy") + "/agents/c1", "-"},
		{Agent{ID: "c2", ClusterQueueID: QueueID(linux, "deploy")}, "clusters/" + linux + "/queues/" + QueueID(linux, "deploy") + "/agents/c2", "deploy"},
		{Agent{ID: "c3", ClusterID: small}, "clusters/" + small + "/queues/" + QueueID(small, "linux-small") + "/agents/c3", "linux-small"},
		{Agent{ID: "c4", ClusterID: small, Extra: map[string]any{"queue": Omit}}, "clusters/" + small + "/queues/" + QueueID(small, "linux-small") + "/agents/c4", "-"},
		{Agent{ID: "l1", ClusterQueueID: "q-undeclared"}, "clusters/" + legacyClusterID("acme") + "/queues/q-undeclared/agents/l1", "default"},
	} {
		s.PutAgent("acme", tt.agent)
		var a map[string]any
		json.Unmarshal(do(t, s, "GET", "/organizations/acme/agents/"+tt.agent.ID, token, "").body, &a)
		if want := "https://buildkite.com/organizations/acme/" + tt.web; a["web_url"] != want {
			t.Errorf("%s: web_url %v, want %s", tt.agent.ID, a["web_url"], want)
		}
		q, ok := a["queue"]
		if (tt.want == "-") == ok || (ok && q != tt.want) {
			t.Errorf("%s: queue %v (present %v), want %s", tt.agent.ID, q, ok, tt.want)
		}
	}
	// The cluster_queue_id filter matches where the agent sits.
	r := do(t, s, "GET", "/organizations/acme/agents?cluster_queue_id="+QueueID(small, "linux-small"), token, "")
	if got := strings.Join(ids(t, r.body), ","); got != "c3,c4" {
		t.Errorf("filter by the default queue: %s", got)
	}
	s.SetReportServedQueue(false)
	var a map[string]any
	json.Unmarshal(do(t, s, "GET", "/organizations/acme/agents/c3", token, "").body, &a)
	if _, ok := a["queue"]; ok {
		t.Error("queue reported after SetReportServedQueue(false)")
	}
}

// With declared clusters, an agent token answers for its cluster only.
func TestAgentMetricsPerCluster(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close)
	linux := s.AddCluster("acme", "linux", "default", "deploy", "gpu")
	mac := s.AddCluster("acme", "macos", "default")
	s.PutAgent("acme", Agent{ID: "l1", ClusterID: linux, Job: &Job{ID: "j1", State: "running"}})
	s.PutAgent("acme", Agent{ID: "l2", ClusterQueueID: QueueID(linux, "deploy"), MetaData: []string{"queue=deploy"}})
	s.PutAgent("acme", Agent{ID: "m1", ClusterID: mac})
	s.PutAgent("acme", Agent{ID: "u1", MetaData: []string{"queue=windows"}})
	s.SetClusterJobs("acme", "linux", "default", 3, 1, 0)
	s.SetClusterJobs("acme", "macos", "default", 7, 0, 2)
	s.AddAgentToken("linux-token", "acme", "linux")
	s.AddAgentToken("mac-token", "acme", "macos")
	s.AddAgentToken("unclustered-token", "acme", "")
	for _, tt := range []struct{ tok, want string }{
		{"linux-token", `{"agents":{"busy":1,"idle":1,"queues":{"default":{"busy":1,"idle":0,"total":1},"deploy":{"busy":0,"idle":1,"total":1},"gpu":{"busy":0,"idle":0,"total":0}},"total":2},"cluster":{"name":"linux"},` +
			`"jobs":{"queues":{"default":{"running":1,"scheduled":3,"total":4,"waiting":0},"deploy":{"running":0,"scheduled":0,"total":0,"waiting":0},"gpu":{"running":0,"scheduled":0,"total":0,"waiting":0}},"running":1,"scheduled":3,"total":4,"waiting":0},"organization":{"slug":"acme"}}`},
		{"mac-token", `{"agents":{"busy":0,"idle":1,"queues":{"default":{"busy":0,"idle":1,"total":1}},"total":1},"cluster":{"name":"macos"},` +
			`"jobs":{"queues":{"default":{"running":0,"scheduled":7,"total":9,"waiting":2}},"running":0,"scheduled":7,"total":9,"waiting":2},"organization":{"slug":"acme"}}`},
		{"unclustered-token", `{"agents":{"busy":0,"idle":1,"queues":{"windows":{"busy":0,"idle":1,"total":1}},"total":1},"cluster":null,` +
			`"jobs":{"queues":{"windows":{"running":0,"scheduled":0,"total":0,"waiting":0}},"running":0,"scheduled":0,"total":0,"waiting":0},"organization":{"slug":"acme"}}`},
	} {
		_, _, body := getAgentAPI(t, s, "/metrics", tt.tok)
		if got := jsonString(body); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.tok, got, tt.want)
		}
	}
}

// The demo fleet has what the brief of clusters asks of it, and its Agent
// Metrics answers name the same clusters.
func TestDemoFleet(t *testing.T) {
	s := NewServer()
	t.Cleanup(s.Close)
	clock := NewClock(epoch)
	cfg := DemoFleet()
	cfg.Agents, cfg.Seed, cfg.Now = 80, 1, clock.Now
	sim := NewSimulator(s.Fake, "demo", cfg)
	for range 20 {
		clock.Advance(2 * time.Second)
		sim.Step()
	}
	clusters := s.Clusters("demo")
	keys := map[string]int{} // queue key -> clusters having it
	served := map[string]int{}
	var paused, nonDefaultDefault bool
	for _, c := range clusters {
		for _, q := range s.Queues("demo", c.ID) {
			keys[q.Key]++
			paused = paused || (q.DispatchPaused && q.DispatchPausedAt != nil)
			if q.ID == c.DefaultQueueID && q.Key != "default" {
				nonDefaultDefault = true
			}
		}
	}
	unclustered := 0
	for _, a := range s.Agents("demo") {
		if a.ConnectionState != StateConnected {
			continue
		}
		if a.ClusterID == "" {
			unclustered++
		} else {
			served[a.ClusterQueueID]++
		}
	}
	gpu := QueueID(ClusterID("demo", "Default cluster"), "gpu")
	if len(clusters) != 3 || keys["default"] != 2 || !paused || !nonDefaultDefault || served[gpu] != 0 || unclustered == 0 {
		t.Errorf("demo fleet: %d clusters, keys %v, paused %v, non-default default queue %v, gpu agents %d, unclustered %d",
			len(clusters), keys, paused, nonDefaultDefault, served[gpu], unclustered)
	}
	for _, c := range clusters {
		s.AddAgentToken("tok-"+c.Name, "demo", c.Name)
		_, _, body := getAgentAPI(t, s, "/metrics", "tok-"+c.Name)
		name, _ := body["cluster"].(map[string]any)["name"].(string)
		qs := body["agents"].(map[string]any)["queues"].(map[string]any)
		if name != c.Name || len(qs) != len(s.Queues("demo", c.ID)) {
			t.Errorf("cluster %s: Agent Metrics names %q with queues %v", c.Name, name, qs)
		}
	}
}
