package status_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
	"github.com/buildkite-exporter/buildkite_exporter/status"
)

// Queues are grouped by cluster, a queue of one key in two clusters is two
// rows, and paused dispatch is marked, in HTML and JSON.
func TestClusters(t *testing.T) {
	e := newEnv(t, "acme")
	e.server.AddToken(testToken) // every scope, read_clusters included
	api, err := client.New(client.Config{BaseURL: e.server.URL, Token: client.StaticToken(testToken), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.exporter, err = collector.New(api, collector.Config{
		Organizations: []string{"acme"}, Timeout: 10 * time.Second, QueueRetention: time.Hour, AgentRetention: time.Hour,
		Now: e.clock.Now, Clusters: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.handler = status.Handler(e.exporter.Status, e.clock.Now)
	linux := e.server.AddCluster("acme", "linux", "default", "gpu")
	macos := e.server.AddCluster("acme", "macos", "default")
	e.server.SetDispatchPaused("acme", linux, buildkitetest.QueueID(linux, "gpu"), true, "maintenance")
	e.server.PutAgent("acme", buildkitetest.Agent{ID: "l1", ConnectionState: "connected", ClusterQueueID: buildkitetest.QueueID(linux, "default")})
	e.server.PutAgent("acme", buildkitetest.Agent{ID: "m1", ConnectionState: "connected", ClusterQueueID: buildkitetest.QueueID(macos, "default")})
	e.server.PutAgent("acme", buildkitetest.Agent{ID: "u1", ConnectionState: "connected", Queue: "build"})
	e.collect()

	page := getHTML(t, e.handler)
	assertOrder(t, text(page), "Unclustered", "build", "Cluster linux", "default", "gpu dispatch paused", "Cluster macos", "default")
	if n := strings.Count(page, `data-dispatch="paused"`); n != 1 {
		t.Errorf("%d queues marked dispatch paused, want 1", n)
	}

	p, _ := getJSON(t, e.handler)
	var got []string
	for _, q := range p.Organizations[0].Queues {
		got = append(got, q.Cluster+"/"+q.Queue+map[bool]string{true: " paused"}[q.DispatchPaused])
	}
	want := "/build linux/default linux/gpu paused macos/default"
	if strings.Join(got, " ") != want {
		t.Errorf("JSON queues %q, want %q", strings.Join(got, " "), want)
	}
	c := p.Organizations[0].Clusters
	if c == nil || !c.OK || len(c.PausedQueues) != 1 || c.PausedQueues[0].Cluster != "linux" || c.PausedQueues[0].DispatchPausedAt == nil {
		t.Errorf("JSON clusters = %+v, want ok with linux/gpu paused", c)
	}

	// The agent tables name the cluster too: both idle agents serve a
	// queue "default", of two clusters; then both leave.
	idle := map[string]string{}
	for _, a := range p.Organizations[0].LongestIdle {
		idle[a.ID] = a.Cluster + "/" + a.Queue
	}
	if idle["l1"] != "linux/default" || idle["m1"] != "macos/default" || idle["u1"] != "/build" {
		t.Errorf("JSON idle agents by cluster/queue = %v", idle)
	}
	for _, want := range []string{">linux/default<", ">macos/default<"} {
		if !strings.Contains(page, want) {
			t.Errorf("the HTML agent tables lack %q", want)
		}
	}
	e.server.RemoveAgent("acme", "l1")
	e.server.RemoveAgent("acme", "m1")
	e.clock.Advance(time.Minute)
	e.collect()
	p, _ = getJSON(t, e.handler)
	departed := map[string]string{}
	for _, d := range p.Organizations[0].Departed {
		departed[d.ID] = d.Cluster + "/" + d.Queue
	}
	if departed["l1"] != "linux/default" || departed["m1"] != "macos/default" {
		t.Errorf("JSON departed agents by cluster/queue = %v", departed)
	}
}

// The idle, running-job and departed tables name each agent's cluster with
// its queue: three queues "default" (two clusters and none) are told apart
// in each, in HTML ("cluster/queue", the queue alone when unclustered) and
// JSON.
func TestClustersInAgentTables(t *testing.T) {
	e := newEnv(t, "acme")
	e.server.AddToken(testToken) // every scope, read_clusters included
	api, err := client.New(client.Config{BaseURL: e.server.URL, Token: client.StaticToken(testToken), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.exporter, err = collector.New(api, collector.Config{
		Organizations: []string{"acme"}, Timeout: 10 * time.Second, QueueRetention: time.Hour, AgentRetention: time.Hour,
		DepartureLookups: 10, Now: e.clock.Now, Clusters: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.handler = status.Handler(e.exporter.Status, e.clock.Now)
	queueIDs := map[string]string{
		"linux": buildkitetest.QueueID(e.server.AddCluster("acme", "linux", "default"), "default"),
		"macos": buildkitetest.QueueID(e.server.AddCluster("acme", "macos", "default"), "default"),
		"":      "",
	}
	prefixes := map[string]string{"linux": "l", "macos": "m", "": "u"}
	for cluster, p := range prefixes {
		put := func(id string, job *buildkitetest.Job) {
			a := buildkitetest.Agent{ID: id, Name: id, Hostname: "host-" + id, ConnectionState: "connected",
				ConnectedAt: at(-time.Hour), ClusterQueueID: queueIDs[cluster], Job: job}
			if cluster == "" {
				a.Queue = "default"
			}
			e.server.PutAgent("acme", a)
		}
		put(p+"-idle", nil)
		put(p+"-busy", &buildkitetest.Job{ID: p + "-job", State: "running", StartedAt: at(-time.Minute)})
		put(p+"-gone", nil)
	}
	e.collect()
	e.clock.Advance(time.Minute)
	for _, p := range prefixes {
		e.server.RemoveAgent("acme", p+"-gone")
	}
	e.collect()

	// What each table should show of each agent: its cluster and queue,
	// the queue alone when unclustered.
	want, wantJSON := map[string]string{}, map[string]string{}
	for cluster, p := range prefixes {
		for _, kind := range []string{"idle", "busy", "gone"} {
			want[p+"-"+kind] = "default"
			if cluster != "" {
				want[p+"-"+kind] = cluster + "/default"
			}
			wantJSON[p+"-"+kind] = cluster + "/default"
		}
	}

	page := getHTML(t, e.handler)
	for table, kind := range map[string]string{"idle": "idle", "jobs": "busy", "departed": "gone"} {
		got := agentQueueCells(t, page, table)
		if len(got) != 3 {
			t.Errorf("table %s: %d rows, want 3: %v", table, len(got), got)
		}
		for agent, cell := range got {
			if !strings.HasSuffix(agent, "-"+kind) || cell != want[agent] {
				t.Errorf("table %s: agent %s in %q, want %q", table, agent, cell, want[agent])
			}
		}
	}

	p, raw := getJSON(t, e.handler)
	o := p.Organizations[0]
	got := map[string]string{}
	for _, a := range o.LongestIdle {
		got[a.Name] = a.Cluster + "/" + a.Queue
	}
	for _, j := range o.LongestJobs {
		got[j.AgentName] = j.Cluster + "/" + j.Queue
	}
	for _, d := range o.Departed {
		got[d.Name] = d.Cluster + "/" + d.Queue
	}
	if fmt.Sprint(got) != fmt.Sprint(wantJSON) {
		t.Errorf("JSON agents' cluster/queue = %v, want %v", got, wantJSON)
	}
	org := raw["organizations"].([]any)[0].(map[string]any)
	for _, key := range []string{"longest_idle", "longest_running_jobs", "departed"} {
		for _, row := range org[key].([]any) {
			if _, ok := row.(map[string]any)["buildkite_cluster"]; !ok {
				t.Errorf("JSON %s row without buildkite_cluster: %v", key, row)
			}
		}
	}
}

// agentQueueCells maps the agent of each row of an agent table (by its
// class) to its queue cell, the table's third column.
func agentQueueCells(t *testing.T, page, class string) map[string]string {
	t.Helper()
	table := regexp.MustCompile(`(?s)<table class="` + class + `">.*?<tbody>(.*?)</tbody>`).FindStringSubmatch(page)
	if table == nil {
		t.Fatalf("no table %q", class)
	}
	cellRE := regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`)
	out := map[string]string{}
	for _, row := range regexp.MustCompile(`(?s)<tr>(.*?)</tr>`).FindAllStringSubmatch(table[1], -1) {
		cells := cellRE.FindAllStringSubmatch(row[1], -1)
		if len(cells) < 3 {
			t.Fatalf("table %s: a row of %d cells: %s", class, len(cells), row[1])
		}
		agent, _, _ := strings.Cut(text(cells[0][1]), " ")
		out[agent] = text(cells[2][1])
	}
	return out
}
