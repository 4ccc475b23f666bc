package buildkitetest

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// ScopeReadClusters is the scope the clusters and queues endpoints check.
const ScopeReadClusters = "read_clusters"

// MsgNoCluster is the fake's 404 message for an unknown cluster (the real
// wording is unconfirmed).
const MsgNoCluster = "No cluster found"

// Cluster is a cluster as Buildkite's API returns it (id, graphql_id,
// default_queue_id, name, description, emoji, color, url, web_url,
// queues_url, default_queue_url, created_at, created_by). The fake fills
// graphql_id, the URLs and created_by; Extra works as Agent.Extra does.
type Cluster struct {
	ID, Name, Description, Emoji, Color string
	DefaultQueueID                      string // "" when the cluster has no default queue (serialized as null)
	CreatedAt                           time.Time
	Extra                               map[string]any
}

// Queue is a cluster queue as Buildkite's API returns it (id, graphql_id,
// key, description, url, web_url, cluster_url,
// dispatch_paused, dispatch_paused_by, dispatch_paused_at,
// dispatch_paused_note, retry_agent_affinity, created_at, created_by). The
// fake fills graphql_id, the URLs, created_by, and dispatch_paused_by while
// paused; Extra works as Agent.Extra does.
type Queue struct {
	ID, Key, Description string
	DispatchPaused       bool
	DispatchPausedAt     *time.Time
	DispatchPausedNote   string
	CreatedAt            time.Time
	Extra                map[string]any
}

// clusterState is a cluster and its queues, by ID.
type clusterState struct {
	Cluster
	queues map[string]*Queue
}

func (c Cluster) clone() Cluster {
	c.Extra = maps.Clone(c.Extra)
	return c
}

func (q Queue) clone() Queue {
	q.DispatchPausedAt = clonePtr(q.DispatchPausedAt)
	q.Extra = maps.Clone(q.Extra)
	return q
}

// ClusterID is the ID AddCluster gives the cluster named name in org.
func ClusterID(org, name string) string { return uuidFrom("cluster:" + org + ":" + name) }

// QueueID is the ID AddCluster and AddQueue give the queue key of a cluster.
func QueueID(clusterID, key string) string { return uuidFrom("queue:" + clusterID + ":" + key) }

// AddCluster adds (or replaces, keeping its queues) the cluster named name in
// org with ID ClusterID(org, name), its default queue defaultQueue and more
// queues with IDs QueueID(cluster, key); it creates the organization and
// returns the cluster's ID. defaultQueue "" leaves the cluster without a
// default queue.
func (f *Fake) AddCluster(org, name, defaultQueue string, queues ...string) string {
	id := ClusterID(org, name)
	c := Cluster{ID: id, Name: name}
	if defaultQueue != "" {
		c.DefaultQueueID = QueueID(id, defaultQueue)
	}
	f.PutCluster(org, c)
	for _, key := range append([]string{defaultQueue}, queues...) {
		if key != "" {
			f.PutQueue(org, id, Queue{Key: key})
		}
	}
	return id
}

// PutCluster adds or replaces the cluster with c.ID (derived from c.Name as
// ClusterID does when ""), keeping the queues of one it replaces, and
// creates the organization. A zero CreatedAt gets the clock's time. It
// returns the cluster's ID.
func (f *Fake) PutCluster(org string, c Cluster) string {
	c = c.clone()
	if c.ID == "" {
		c.ID = ClusterID(org, c.Name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.CreatedAt.IsZero() {
		c.CreatedAt = f.now()
	}
	f.orgLocked(org)
	if f.clusters[org] == nil {
		f.clusters[org] = map[string]*clusterState{}
	}
	st := f.clusters[org][c.ID]
	if st == nil {
		st = &clusterState{queues: map[string]*Queue{}}
		f.clusters[org][c.ID] = st
	}
	st.Cluster = c
	return c.ID
}

// PutQueue adds or replaces the queue with q.ID (QueueID(clusterID, q.Key)
// when "") in an existing cluster; a zero CreatedAt gets the clock's time. It
// returns the queue's ID, or "" when there is no such cluster.
func (f *Fake) PutQueue(org, clusterID string, q Queue) string {
	q = q.clone()
	if q.ID == "" {
		q.ID = QueueID(clusterID, q.Key)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.clusters[org][clusterID]
	if st == nil {
		return ""
	}
	if q.CreatedAt.IsZero() {
		q.CreatedAt = f.now()
	}
	st.queues[q.ID] = &q
	return q.ID
}

// RemoveCluster deletes a cluster and its queues. Agents that were in it keep
// their web_url (with the cluster's UUID); their queue key is no longer known.
func (f *Fake) RemoveCluster(org, clusterID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.clusters[org], clusterID)
}

// RemoveQueue deletes a queue of a cluster.
func (f *Fake) RemoveQueue(org, clusterID, queueID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st := f.clusters[org][clusterID]; st != nil {
		delete(st.queues, queueID)
	}
}

// SetDispatchPaused pauses (with a note) or resumes dispatch to a queue, as
// Buildkite's pause_dispatch and resume_dispatch do: dispatch_paused_at is the
// clock's time when paused, null when not. It reports whether the queue exists.
func (f *Fake) SetDispatchPaused(org, clusterID, queueID string, paused bool, note string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queueLocked(org, clusterID, queueID)
	if q == nil {
		return false
	}
	q.DispatchPaused, q.DispatchPausedAt, q.DispatchPausedNote = paused, nil, ""
	if paused {
		q.DispatchPausedAt, q.DispatchPausedNote = ptr(f.now()), note
	}
	return true
}

func (f *Fake) queueLocked(org, clusterID, queueID string) *Queue {
	if st := f.clusters[org][clusterID]; st != nil {
		return st.queues[queueID]
	}
	return nil
}

// Clusters returns copies of org's clusters in the order the API lists them
// (oldest first, then by ID).
func (f *Fake) Clusters(org string) []Cluster {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Cluster
	for _, st := range f.sortedClustersLocked(org) {
		out = append(out, st.Cluster.clone())
	}
	return out
}

// Queues returns copies of a cluster's queues in the order the API lists them
// (oldest first, then by ID); nil for an unknown cluster.
func (f *Fake) Queues(org, clusterID string) []Queue {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Queue
	for _, q := range sortedQueues(f.clusters[org][clusterID]) {
		out = append(out, q.clone())
	}
	return out
}

func (f *Fake) sortedClustersLocked(org string) []*clusterState {
	list := slices.Collect(maps.Values(f.clusters[org]))
	slices.SortFunc(list, func(a, b *clusterState) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list
}

func sortedQueues(st *clusterState) []*Queue {
	if st == nil {
		return nil
	}
	list := slices.Collect(maps.Values(st.queues))
	slices.SortFunc(list, func(a, b *Queue) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return list
}

// placement is where an agent sits: its cluster and queue UUIDs ("" when
// unclustered) and, when the fake knows them, the cluster and queue.
type placement struct {
	clusterID, queueID string
	cluster            *clusterState // nil when the cluster is not declared
	queue              *Queue        // nil when the queue is not declared
}

// legacyClusterID is the cluster of agents whose ClusterQueueID names no
// declared queue and that name no ClusterID: the fake's one implicit cluster
// per organization, which the clusters endpoint does not list.
func legacyClusterID(org string) string { return uuidFrom("cluster:" + org) }

// placeLocked finds an agent's cluster and queue: the declared queue its
// ClusterQueueID names, else its ClusterID (and that cluster's default
// queue), else the organization's implicit cluster when it has a
// ClusterQueueID, else none.
func (f *Fake) placeLocked(org string, a *Agent) placement {
	if a.ClusterQueueID != "" {
		for id, st := range f.clusters[org] {
			if q := st.queues[a.ClusterQueueID]; q != nil && (a.ClusterID == "" || a.ClusterID == id) {
				return placement{clusterID: id, queueID: q.ID, cluster: st, queue: q}
			}
		}
		p := placement{clusterID: a.ClusterID, queueID: a.ClusterQueueID, cluster: f.clusters[org][a.ClusterID]}
		if p.clusterID == "" {
			p.clusterID = legacyClusterID(org)
		}
		return p
	}
	if a.ClusterID == "" {
		return placement{}
	}
	p := placement{clusterID: a.ClusterID, cluster: f.clusters[org][a.ClusterID]}
	if p.cluster != nil && p.cluster.DefaultQueueID != "" {
		p.queueID = p.cluster.DefaultQueueID
		p.queue = p.cluster.queues[p.queueID]
	}
	if p.queueID == "" {
		p.queueID = QueueID(p.clusterID, "default")
	}
	return p
}

// servedQueueKey is the queue key the API reports for an agent without a
// queue tag: its queue's key when the fake knows it, else its cluster's
// default queue key, else "default" (unclustered, or a cluster the fake does
// not know).
func (p placement) servedQueueKey() string {
	switch {
	case p.queue != nil:
		return p.queue.Key
	case p.cluster != nil && p.cluster.queues[p.cluster.DefaultQueueID] != nil:
		return p.cluster.queues[p.cluster.DefaultQueueID].Key
	}
	return "default"
}

// hasQueueTag reports whether meta_data has a non-empty queue= tag.
func hasQueueTag(meta []string) bool {
	for _, m := range meta {
		if k, v, _ := strings.Cut(m, "="); k == "queue" && v != "" {
			return true
		}
	}
	return false
}

func (c *clusterState) render(org, apiBase string) object {
	self := fmt.Sprintf("%s/v2/organizations/%s/clusters/%s", apiBase, org, c.ID)
	var defaultQueue, defaultQueueURL any
	if c.DefaultQueueID != "" {
		defaultQueue, defaultQueueURL = c.DefaultQueueID, self+"/queues/"+c.DefaultQueueID
	}
	var description, emoji, color any
	if c.Description != "" {
		description = c.Description
	}
	if c.Emoji != "" {
		emoji = c.Emoji
	}
	if c.Color != "" {
		color = c.Color
	}
	return object{
		{"id", c.ID},
		{"graphql_id", graphqlID("Cluster", c.ID)},
		{"default_queue_id", defaultQueue},
		{"name", c.Name},
		{"description", description},
		{"emoji", emoji},
		{"color", color},
		{"url", self},
		{"web_url", fmt.Sprintf("https://buildkite.com/organizations/%s/clusters/%s", org, c.ID)},
		{"queues_url", self + "/queues"},
		{"default_queue_url", defaultQueueURL},
		{"created_at", ts(c.CreatedAt)},
		{"created_by", creator()},
	}.merge(c.Extra)
}

func (q *Queue) render(org, clusterID, apiBase string) object {
	clusterURL := fmt.Sprintf("%s/v2/organizations/%s/clusters/%s", apiBase, org, clusterID)
	var description, pausedBy, pausedNote any
	if q.Description != "" {
		description = q.Description
	}
	if q.DispatchPaused {
		pausedBy = creator()
	}
	if q.DispatchPausedNote != "" {
		pausedNote = q.DispatchPausedNote
	}
	return object{
		{"id", q.ID},
		{"graphql_id", graphqlID("ClusterQueue", q.ID)},
		{"key", q.Key},
		{"description", description},
		{"url", clusterURL + "/queues/" + q.ID},
		{"web_url", fmt.Sprintf("https://buildkite.com/organizations/%s/clusters/%s/queues/%s", org, clusterID, q.ID)},
		{"cluster_url", clusterURL},
		{"dispatch_paused", q.DispatchPaused},
		{"dispatch_paused_by", pausedBy},
		{"dispatch_paused_at", tsPtr(q.DispatchPausedAt)},
		{"dispatch_paused_note", pausedNote},
		{"retry_agent_affinity", "prefer-warmest"},
		{"created_at", ts(q.CreatedAt)},
		{"created_by", creator()},
	}.merge(q.Extra)
}

// listClusters answers GET .../clusters and GET .../clusters/{id}/queues.
func (f *Fake) listClusters(r *http.Request, rt route, resp *response) {
	q := r.URL.Query()
	page, perPage := parsePage(q.Get("page")), parsePerPage(q.Get("per_page"))
	base := apiBase(r)
	var all []object
	f.mu.Lock()
	origin := f.linkOrigin
	if rt.kind == routeClusters {
		for _, st := range f.sortedClustersLocked(rt.org) {
			all = append(all, st.render(rt.org, base))
		}
	} else {
		st := f.clusters[rt.org][rt.id]
		if st == nil {
			f.mu.Unlock()
			resp.message(http.StatusNotFound, MsgNoCluster)
			return
		}
		for _, qu := range sortedQueues(st) {
			all = append(all, qu.render(rt.org, st.ID, base))
		}
	}
	f.mu.Unlock()
	writePage(r, origin, resp, all, page, perPage)
}

// writePage answers with one page of list and its Link header, whose URLs
// name origin when set.
func writePage(r *http.Request, origin string, resp *response, list []object, page, perPage int) {
	out := []object{}
	if start := (page - 1) * perPage; start < len(list) {
		out = list[start:min(start+perPage, len(list))]
	}
	if link := linkHeader(r, origin, page, perPage, len(list)); link != "" {
		resp.header.Set("Link", link)
	}
	body, err := encodeList(out)
	if err != nil {
		resp.message(http.StatusInternalServerError, err.Error())
		return
	}
	resp.status, resp.body = http.StatusOK, body
	resp.header.Set("Content-Type", jsonContentType)
}

// dispatchPaused reports whether the agent's queue is declared and
// dispatch-paused.
func (f *Fake) dispatchPaused(org string, a *Agent) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.placeLocked(org, a)
	return p.queue != nil && p.queue.DispatchPaused
}
