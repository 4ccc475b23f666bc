package status_test

import (
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
