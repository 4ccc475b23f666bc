package buildkitetest

import (
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"
)

// The Agent Metrics API (https://agent.buildkite.com/v3), served by the same
// Fake through Handler (Server routes to it already):
//
//	GET /v3/metrics            every queue of the agent token's cluster
//	GET /v3/metrics/queue?name=Q  one queue
//
// Authentication is "Authorization: Token <agent token>", the tokens added
// with AddAgentToken; an unknown one answers 401. Agent counts per queue come
// from the Fake's own agents in the token's organization (connected and
// stopping ones; an agent's queues are its queue field, else its queue= tags,
// else the queue it serves as its "queue" field says; busy means it has a
// job, idle the rest); job counts are what SetJobs and SetClusterJobs set. A
// queue is listed when an agent serves it, jobs were set for it, or it is a
// declared queue of the token's cluster.
//
// Once the organization has declared clusters (AddCluster, PutCluster), an
// agent token answers for its cluster only, as Buildkite's do: a token whose
// cluster name names a declared cluster counts that cluster's agents and
// lists all its queues; a token with cluster "" counts the unclustered agents.
// Without declared clusters a token counts every agent of the organization. Every 200 carries Buildkite-Agent-Metrics-Poll-Duration (10 unless
// SetAgentMetricsPollDuration changed it). Requests are recorded and faults
// apply as for the REST API; rate limits do not.

// MsgAgentUnauthorized is the fake's 401 message for the Agent API (the real
// wording is unconfirmed).
const MsgAgentUnauthorized = "Unauthorized"

// DefaultAgentMetricsPollDuration is the Poll-Duration header's default.
const DefaultAgentMetricsPollDuration = 10

type agentToken struct{ org, cluster string }

type jobCounts struct{ scheduled, running, waiting int }

// clusterKey is a queue of a named cluster ("" for unclustered).
type clusterKey struct{ cluster, queue string }

// agentMetricsState is the Agent API's part of a Fake. It lives beside the
// Fake (keyed weakly, so a collected Fake takes it along) and is guarded by
// the Fake's own mutex.
type agentMetricsState struct {
	tokens      map[string]agentToken
	jobs        map[string]map[string]jobCounts     // org -> queue -> counts, any cluster
	clusterJobs map[string]map[clusterKey]jobCounts // org -> cluster name and queue -> counts
	pollSeconds int
}

var agentMetricsStates sync.Map // weak.Pointer[Fake] -> *agentMetricsState

// agentStateLocked returns f's Agent API state, creating it; f.mu must be held.
func (f *Fake) agentStateLocked() *agentMetricsState {
	key := weak.Make(f)
	if st, ok := agentMetricsStates.Load(key); ok {
		return st.(*agentMetricsState)
	}
	st := &agentMetricsState{
		tokens:      map[string]agentToken{},
		jobs:        map[string]map[string]jobCounts{},
		clusterJobs: map[string]map[clusterKey]jobCounts{},
		pollSeconds: DefaultAgentMetricsPollDuration,
	}
	if prev, loaded := agentMetricsStates.LoadOrStore(key, st); loaded {
		return prev.(*agentMetricsState)
	}
	runtime.AddCleanup(f, func(k weak.Pointer[Fake]) { agentMetricsStates.Delete(k) }, key)
	return st
}

// AddAgentToken makes token a valid agent token for the cluster named
// cluster ("" for none) of organization org, creating the organization.
func (f *Fake) AddAgentToken(token, org, cluster string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orgLocked(org)
	f.agentStateLocked().tokens[token] = agentToken{org: org, cluster: cluster}
}

// SetJobs sets the unfinished jobs of a queue key, in whichever cluster a
// token names (every cluster having that key). All zero removes the queue's
// jobs entry: the queue is then listed only while an agent serves it (or
// its cluster declares it). SetClusterJobs takes precedence for its queue.
func (f *Fake) SetJobs(org, queue string, scheduled, running, waiting int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.agentStateLocked()
	if scheduled == 0 && running == 0 && waiting == 0 {
		delete(st.jobs[org], queue)
		return
	}
	if st.jobs[org] == nil {
		st.jobs[org] = map[string]jobCounts{}
	}
	st.jobs[org][queue] = jobCounts{max(scheduled, 0), max(running, 0), max(waiting, 0)}
}

// SetClusterJobs sets the unfinished jobs of the queue key of the cluster
// named cluster ("" for unclustered agents), for the tokens of that cluster
// only. All zero removes the entry.
func (f *Fake) SetClusterJobs(org, cluster, queue string, scheduled, running, waiting int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.agentStateLocked()
	k := clusterKey{cluster, queue}
	if scheduled == 0 && running == 0 && waiting == 0 {
		delete(st.clusterJobs[org], k)
		return
	}
	if st.clusterJobs[org] == nil {
		st.clusterJobs[org] = map[clusterKey]jobCounts{}
	}
	st.clusterJobs[org][k] = jobCounts{max(scheduled, 0), max(running, 0), max(waiting, 0)}
}

// SetAgentMetricsPollDuration sets the Buildkite-Agent-Metrics-Poll-Duration
// header in seconds; 0 or less leaves it out.
func (f *Fake) SetAgentMetricsPollDuration(seconds int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agentStateLocked().pollSeconds = seconds
}

// Handler serves the REST API under /v2, the Agent Metrics API under /v3
// and the GraphQL API at /graphql (see graphql.go).
// (The Fake itself, as an http.Handler, serves only the REST API.)
func (f *Fake) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3" || strings.HasPrefix(r.URL.Path, "/v3/") {
			f.serveAgentAPI(w, r)
			return
		}
		if r.URL.Path == "/graphql" {
			f.serveGraphQL(w, r)
			return
		}
		f.ServeHTTP(w, r)
	})
}

func (f *Fake) serveAgentAPI(w http.ResponseWriter, r *http.Request) {
	f.serve(w, r, func(r *http.Request, _ time.Time, resp *response, ft *Fault) { f.handleAgentAPI(r, resp, ft) })
}

// agentToken extracts the token of "Token <token>" (scheme case-insensitive).
func agentTokenOf(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Token") {
		return ""
	}
	return strings.TrimSpace(token)
}

type wireAgentCounts struct {
	Idle  int `json:"idle"`
	Busy  int `json:"busy"`
	Total int `json:"total"`
}

type wireJobCounts struct {
	Scheduled int `json:"scheduled"`
	Running   int `json:"running"`
	Waiting   int `json:"waiting"`
	Total     int `json:"total"`
}

type wireSlug struct {
	Slug string `json:"slug"`
}

type wireClusterName struct {
	Name string `json:"name"`
}

func (f *Fake) handleAgentAPI(r *http.Request, resp *response, ft *Fault) {
	if ft != nil && ft.Status != 0 {
		faultResponse(ft, resp)
		return
	}
	token := agentTokenOf(r.Header.Get("Authorization"))
	f.mu.Lock()
	st := f.agentStateLocked()
	info, ok := st.tokens[token]
	poll := st.pollSeconds
	f.mu.Unlock()
	if !ok || token == "" {
		resp.message(http.StatusUnauthorized, MsgAgentUnauthorized)
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path != "/v3/metrics" && path != "/v3/metrics/queue" {
		resp.message(http.StatusNotFound, "Not Found")
		return
	}
	if r.Method != http.MethodGet {
		resp.header.Set("Allow", http.MethodGet)
		resp.message(http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	agents, jobs := f.agentMetricsCounts(info.org, info.cluster)
	org := wireSlug{Slug: info.org}
	var cluster *wireClusterName
	if info.cluster != "" {
		cluster = &wireClusterName{Name: info.cluster}
	}
	if path == "/v3/metrics/queue" {
		name := r.URL.Query().Get("name")
		if name == "" {
			resp.message(http.StatusUnprocessableEntity, "name is required")
			return
		}
		resp.json(http.StatusOK, struct {
			Agents       wireAgentCounts  `json:"agents"`
			Jobs         wireJobCounts    `json:"jobs"`
			Organization wireSlug         `json:"organization"`
			Cluster      *wireClusterName `json:"cluster"`
		}{agents[name], jobs[name], org, cluster})
	} else {
		type allAgents struct {
			wireAgentCounts
			Queues map[string]wireAgentCounts `json:"queues"`
		}
		type allJobs struct {
			wireJobCounts
			Queues map[string]wireJobCounts `json:"queues"`
		}
		a := allAgents{Queues: map[string]wireAgentCounts{}}
		j := allJobs{Queues: map[string]wireJobCounts{}}
		// Every listed queue appears under both, as Buildkite lists every
		// queue of the cluster.
		for _, q := range sortedKeys(agents, jobs) {
			a.Queues[q], j.Queues[q] = agents[q], jobs[q]
			j.Scheduled += jobs[q].Scheduled
			j.Running += jobs[q].Running
			j.Waiting += jobs[q].Waiting
			j.Total += jobs[q].Total
		}
		// Cluster totals count each agent once, however many queues it serves.
		a.wireAgentCounts = agents[totalKey]
		delete(a.Queues, totalKey)
		delete(j.Queues, totalKey)
		resp.json(http.StatusOK, struct {
			Agents       allAgents        `json:"agents"`
			Jobs         allJobs          `json:"jobs"`
			Organization wireSlug         `json:"organization"`
			Cluster      *wireClusterName `json:"cluster"`
		}{a, j, org, cluster})
	}
	if poll > 0 {
		resp.header.Set("Buildkite-Agent-Metrics-Poll-Duration", strconv.Itoa(poll))
	}
}

// totalKey holds the cluster-wide agent counts in agentMetricsCounts' map; no
// queue key can contain a NUL.
const totalKey = "\x00total"

// agentMetricsCounts counts the listed agents of org that a token of the
// named cluster sees, per queue (and in total under totalKey), and returns
// the jobs set per queue.
func (f *Fake) agentMetricsCounts(org, cluster string) (map[string]wireAgentCounts, map[string]wireJobCounts) {
	f.mu.Lock()
	defer f.mu.Unlock()
	agents := map[string]wireAgentCounts{totalKey: {}}
	add := func(key string, busy bool) {
		c := agents[key]
		c.Total++
		if busy {
			c.Busy++
		} else {
			c.Idle++
		}
		agents[key] = c
	}
	// With declared clusters, the token sees one cluster: wantID ("" for
	// the unclustered agents; a name no cluster has sees none).
	scoped := len(f.clusters[org]) > 0
	wantID := ""
	if scoped && cluster != "" {
		wantID = "\x00none"
		if st := f.clusterByNameLocked(org, cluster); st != nil {
			wantID = st.ID
			for _, q := range st.queues {
				agents[q.Key] = wireAgentCounts{}
			}
		}
	}
	for _, a := range f.orgs[org] {
		if a.ConnectionState != StateConnected && a.ConnectionState != StateStopping {
			continue
		}
		p := f.placeLocked(org, a)
		if scoped && p.clusterID != wantID {
			continue
		}
		for _, q := range agentQueueKeys(a, p.servedQueueKey()) {
			add(q, a.Job != nil)
		}
		add(totalKey, a.Job != nil)
	}
	st := f.agentStateLocked()
	jobs := map[string]wireJobCounts{}
	set := func(q string, c jobCounts) {
		jobs[q] = wireJobCounts{c.scheduled, c.running, c.waiting, c.scheduled + c.running + c.waiting}
	}
	for q, c := range st.jobs[org] {
		set(q, c)
	}
	for k, c := range st.clusterJobs[org] {
		if k.cluster == cluster {
			set(k.queue, c)
		}
	}
	return agents, jobs
}

// clusterByNameLocked finds a declared cluster of org by name (the oldest
// when several share it).
func (f *Fake) clusterByNameLocked(org, name string) *clusterState {
	for _, st := range f.sortedClustersLocked(org) {
		if st.Name == name {
			return st
		}
	}
	return nil
}

// agentQueueKeys: the queue field when set, else every distinct non-empty
// queue= tag, else served (the queue the agent serves without a tag).
func agentQueueKeys(a *Agent, served string) []string {
	if a.Queue != "" {
		return []string{a.Queue}
	}
	var qs []string
	for _, m := range a.MetaData {
		k, v, _ := strings.Cut(m, "=")
		if k == "queue" && v != "" && !slices.Contains(qs, v) {
			qs = append(qs, v)
		}
	}
	if len(qs) == 0 {
		return []string{served}
	}
	return qs
}

func sortedKeys(a map[string]wireAgentCounts, j map[string]wireJobCounts) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range j {
		set[k] = true
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
