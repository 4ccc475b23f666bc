package client_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// declareClusters gives org three clusters (two with a queue keyed
// default), one queue dispatch-paused, and returns what a read must return.
func declareClusters(srv *buildkitetest.Server) []client.ClusterQueues {
	linux := srv.AddCluster(org, "linux", "default", "deploy", "gpu")
	mac := srv.AddCluster(org, "macos", "default")
	small := srv.AddCluster(org, "Default cluster", "linux-small")
	deploy := buildkitetest.QueueID(linux, "deploy")
	srv.SetDispatchPaused(org, linux, deploy, true, "release freeze")
	q := func(cluster, key string) client.Queue {
		return client.Queue{ID: buildkitetest.QueueID(cluster, key), Key: key}
	}
	pausedDeploy := q(linux, "deploy")
	pausedDeploy.DispatchPaused, pausedDeploy.DispatchPausedAt = true, epoch
	// The fake lists oldest first, then by ID: all were created at epoch.
	want := []client.ClusterQueues{
		{Cluster: client.Cluster{ID: linux, Name: "linux", DefaultQueueID: buildkitetest.QueueID(linux, "default")},
			Queues: []client.Queue{q(linux, "default"), pausedDeploy, q(linux, "gpu")}},
		{Cluster: client.Cluster{ID: mac, Name: "macos", DefaultQueueID: buildkitetest.QueueID(mac, "default")},
			Queues: []client.Queue{q(mac, "default")}},
		{Cluster: client.Cluster{ID: small, Name: "Default cluster", DefaultQueueID: buildkitetest.QueueID(small, "linux-small")},
			Queues: []client.Queue{q(small, "linux-small")}},
	}
	slices.SortFunc(want, func(a, b client.ClusterQueues) int { return strings.Compare(a.ID, b.ID) })
	for _, c := range want {
		slices.SortFunc(c.Queues, func(a, b client.Queue) int { return strings.Compare(a.ID, b.ID) })
	}
	return want
}

func TestListClustersWithQueues(t *testing.T) {
	for _, tt := range []struct {
		name     string
		perPage  int
		requests int
	}{
		{"one page each", 0, 4}, // the clusters, then each cluster's queues
		{"paged", 2, 6},         // 3 clusters and linux's 3 queues take 2 pages each
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *client.Config) { c.PerPage = tt.perPage })
			want := declareClusters(e.srv)
			set, err := e.c.ListClustersWithQueues(e.ctx, org)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(set.Clusters, want) {
				t.Errorf("clusters:\n got %+v\nwant %+v", set.Clusters, want)
			}
			if set.Requests != tt.requests {
				t.Errorf("Requests = %d, want %d", set.Requests, tt.requests)
			}
			e.reported.Add(int64(set.Requests))
			e.checkRequests(t, tt.requests)
			for _, r := range e.srv.Requests() {
				if !strings.Contains(r.RawQuery, "per_page=") {
					t.Errorf("%s?%s: no per_page", r.Path, r.RawQuery)
				}
			}
			if _, ok := e.c.RateLimit(org); !ok {
				t.Error("no rate limit recorded from the clusters reads")
			}
			if def, ok := set.Clusters[0].DefaultQueue(); !ok || def.ID != set.Clusters[0].DefaultQueueID {
				t.Errorf("DefaultQueue() = %+v, %v", def, ok)
			}
		})
	}
}

func TestListClustersEmptyAndQueues(t *testing.T) {
	e := newEnv(t)
	list, err := e.c.ListClusters(e.ctx, org)
	if err != nil || len(list.Clusters) != 0 || list.Requests != 1 {
		t.Fatalf("no clusters: %+v, %v", list, err)
	}
	id := e.srv.AddCluster(org, "linux", "default", "deploy")
	queues, err := e.c.ListQueues(e.ctx, org, id)
	if err != nil || len(queues.Queues) != 2 || queues.Requests != 1 {
		t.Fatalf("ListQueues: %+v, %v", queues, err)
	}
}

func TestClustersErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		token   string
		org     string
		cluster string // ListQueues of this cluster, else ListClusters
		fault   *buildkitetest.Fault
		want    error
		check   func(t *testing.T, err error)
	}{
		{name: "no read_clusters scope", token: readOnly, want: client.ErrForbidden, check: func(t *testing.T, err error) {
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Scope != "read_clusters" || !strings.Contains(err.Error(), "read_clusters") {
				t.Errorf("error %v does not name read_clusters", err)
			}
		}},
		{name: "bad token", token: "bkua_nosuchtoken0123456789abcdef012345678", want: client.ErrUnauthorized},
		{name: "unknown organization", org: "nosuch", want: client.ErrNotFound},
		{name: "unknown cluster", cluster: "3f1c8a9e-0000-4000-8000-000000000000", want: client.ErrNotFound},
		{name: "rate limited", fault: &buildkitetest.Fault{Status: 429, Body: `{"message":"slow down","scope":"rest","reset":30}`}, want: client.ErrRateLimited},
		{name: "malformed", fault: &buildkitetest.Fault{Malformed: true}, want: client.ErrMalformed},
		{name: "not an array", fault: &buildkitetest.Fault{Status: 200, Body: `{"id":"x"}`}, want: client.ErrMalformed},
		{name: "element without id", fault: &buildkitetest.Fault{Status: 200, Body: `[{"id":null,"name":"x"}]`}, want: client.ErrMalformed},
		{name: "queue without key", cluster: "c", fault: &buildkitetest.Fault{Status: 200, Body: `[{"id":"q","key":7}]`}, want: client.ErrMalformed},
		{name: "next link without a page", fault: &buildkitetest.Fault{LinkHeader: `<https://api.buildkite.com/v2/organizations/acme/clusters>; rel="next"`}, want: client.ErrMalformed},
		{name: "next link back to page 1", fault: &buildkitetest.Fault{LinkHeader: `<https://api.buildkite.com/v2/organizations/acme/clusters?page=1>; rel="next"`}, want: client.ErrPageLimit},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.AddCluster(org, "linux", "default")
			c := e.c
			if tt.token != "" {
				c = e.withToken(t, tt.token)
			}
			if tt.org == "" {
				tt.org = org
			}
			if tt.fault != nil {
				e.srv.InjectFault(*tt.fault)
			}
			var err error
			if tt.cluster != "" {
				_, err = c.ListQueues(e.ctx, tt.org, tt.cluster)
			} else {
				_, err = c.ListClustersWithQueues(e.ctx, tt.org)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

// Odd optional members are absent, not failures: one cluster's odd name or
// timestamp never fails the read.
func TestClustersOddMembers(t *testing.T) {
	e := newEnv(t)
	e.srv.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/clusters/c1/queues"), Status: 200, Body: `[
		{"id":"q1","key":"default","dispatch_paused":"yes","dispatch_paused_at":"2025-03-01T11:00:00.000Z"},
		{"id":"q2","key":"deploy","dispatch_paused":true,"dispatch_paused_at":12,"description":{"x":1}},
		{"id":"q3","key":"gpu","dispatch_paused":true,"dispatch_paused_at":"2025-03-01T11:00:00.123Z","retry_agent_affinity":null},
		{"id":"q1","key":"default"}
	]`})
	e.srv.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/clusters"), Status: 200, Body: `[
		{"id":"c1","name":{"en":"linux"},"default_queue_id":7,"emoji":[],"created_at":false},
		{"id":"c1","name":"again"}
	]`})
	set, err := e.c.ListClustersWithQueues(e.ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	want := []client.ClusterQueues{{Cluster: client.Cluster{ID: "c1"}, Queues: []client.Queue{
		{ID: "q1", Key: "default"},
		{ID: "q2", Key: "deploy", DispatchPaused: true},
		{ID: "q3", Key: "gpu", DispatchPaused: true, DispatchPausedAt: time.Date(2025, 3, 1, 11, 0, 0, 123e6, time.UTC)},
	}}}
	if !reflect.DeepEqual(set.Clusters, want) {
		t.Errorf("got %+v\nwant %+v", set.Clusters, want)
	}
}

// A 5xx is retried like any REST request, and the retry is counted.
func TestClustersRetryCounted(t *testing.T) {
	e := newEnv(t)
	e.srv.AddCluster(org, "linux", "default")
	e.srv.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/queues"), Status: 502, Times: 1})
	set, err := e.c.ListClustersWithQueues(e.ctx, org)
	if err != nil {
		t.Fatal(err)
	}
	if set.Requests != 3 || len(set.Clusters) != 1 || len(set.Clusters[0].Queues) != 1 {
		t.Errorf("got %+v, want 3 requests and one cluster with one queue", set)
	}
	e.reported.Add(int64(set.Requests))
	e.checkRequests(t, 3)
}

// The requests of a failed read are still counted, in its result.
func TestClustersFailedReadCounted(t *testing.T) {
	e := newEnv(t)
	e.srv.AddCluster(org, "linux", "default")
	e.srv.InjectFault(buildkitetest.Fault{Match: buildkitetest.MatchPath("/queues"), Status: 403, Body: `{"message":"Your access token doesn't have the read_clusters scope"}`})
	set, err := e.c.ListClustersWithQueues(e.ctx, org)
	if !errors.Is(err, client.ErrForbidden) || set == nil || set.Clusters != nil {
		t.Fatalf("error %v, want ErrForbidden", err)
	}
	e.reported.Add(int64(set.Requests))
	e.checkRequests(t, 2)
}

func TestClustersInvalidNames(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.c.ListClusters(ctx, ".."); err == nil {
		t.Error("organization .. accepted")
	}
	if _, err := e.c.ListQueues(ctx, org, ""); err == nil {
		t.Error("empty cluster ID accepted")
	}
	if n := len(e.srv.Requests()); n != 0 {
		t.Errorf("%d requests sent for invalid names", n)
	}
}
