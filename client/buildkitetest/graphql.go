package buildkitetest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"weak"
)

// The GraphQL API (https://graphql.buildkite.com/v1), served by the same
// Fake through Handler at /graphql (Server.GraphQLURL). It is no GraphQL
// engine: it answers the two operations the exporter sends for queue
// metrics, by operationName and variables, with the shapes Buildkite's
// schema gives them, for the clusters and queues the REST API lists (same
// names, keys and UUIDs):
//
//	QueueMetrics($org, $clusters, $after, $queues): a page of the
//	    organization's clusters (by name), each with its first $queues queues
//	ClusterQueues($org, $cluster, $queues, $after): a page of one cluster's
//	    queues (by key), the cluster by UUID
//
// Authentication is "Authorization: Bearer <token>" with a token added by
// AddToken (any scopes: GraphQL access cannot be narrowed); an unknown one
// answers 401. An organization the token cannot see answers
// {"data":{"organization":null}}. Clusters and queues are the Fake's
// (AddCluster, PutQueue, AddClusterQueues, the Simulator's). A queue's metrics are null when SetQueueMetricsNull says
// so, fixed when SetQueueMetrics gave them, and otherwise move with the
// fake's clock: a new one-minute bucket every minute, its values derived
// from the queue and the bucket. Cursors are opaque and name the last item
// returned, so paging survives additions. Every answer carries
// RateLimit-* (organization) and RateLimit-User-* (token) headers in
// complexity points over five-minute windows; past a limit set with
// SetGraphQLLimits the answer is 429 with an errors array. Requests are
// recorded and faults apply as for the REST API.

// Messages of the GraphQL fake (the real wording is unconfirmed).
const (
	MsgGraphQLUnauthorized = "Your access token is invalid or does not have GraphQL access"
	MsgGraphQLRateLimited  = "You have exceeded your GraphQL API rate limit. Please wait before making more requests."
)

// GraphQLWindow is the length of the fake's complexity windows.
const GraphQLWindow = 5 * time.Minute

// QueueMetricsValues are a queue's metrics as SetQueueMetrics fixes them.
type QueueMetricsValues struct {
	Timestamp                          time.Time
	JobsPassed, JobsFailed             int
	WaitMin, WaitP50, WaitP95, WaitMax float64
}

type pointsWindow struct {
	start time.Time
	used  int
}

// graphQLState is the GraphQL API's part of a Fake, kept beside it like
// agentMetricsState and guarded by the Fake's mutex. The clusters and
// queues are the Fake's own (AddCluster, PutQueue, AddClusterQueues):
// this holds only what the REST API does not show.
type graphQLState struct {
	null                   map[string]bool                // queue ID -> metrics null
	fixed                  map[string]*QueueMetricsValues // queue ID -> metrics fixed by SetQueueMetrics
	errors                 []string
	orgLimit, userLimit    int
	orgWindows, userWindow map[string]*pointsWindow
}

var graphQLStates sync.Map // weak.Pointer[Fake] -> *graphQLState

// graphQLStateLocked returns f's GraphQL state, creating it; f.mu must be held.
func (f *Fake) graphQLStateLocked() *graphQLState {
	key := weak.Make(f)
	if st, ok := graphQLStates.Load(key); ok {
		return st.(*graphQLState)
	}
	st := &graphQLState{
		null:       map[string]bool{},
		fixed:      map[string]*QueueMetricsValues{},
		orgWindows: map[string]*pointsWindow{},
		userWindow: map[string]*pointsWindow{},
	}
	if prev, loaded := graphQLStates.LoadOrStore(key, st); loaded {
		return prev.(*graphQLState)
	}
	runtime.AddCleanup(f, func(k weak.Pointer[Fake]) { graphQLStates.Delete(k) }, key)
	return st
}

// AddClusterQueues declares the queue keys in org's cluster named cluster,
// creating the organization and the cluster (with ID ClusterID(org,
// cluster) and no default queue) when they do not exist; new queues get
// IDs QueueID. Both APIs then list them. With no queue it adds the cluster
// alone.
func (f *Fake) AddClusterQueues(org, cluster string, queues ...string) {
	id := f.clusterIDByName(org, cluster)
	if id == "" {
		id = f.PutCluster(org, Cluster{Name: cluster})
	}
	have := map[string]bool{}
	for _, q := range f.Queues(org, id) {
		have[q.Key] = true
	}
	for _, key := range queues {
		if !have[key] {
			have[key] = true
			f.PutQueue(org, id, Queue{Key: key})
		}
	}
}

// clusterIDByName is the ID of org's cluster named name (the oldest, should
// several share it), "" when there is none.
func (f *Fake) clusterIDByName(org, name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, st := range f.sortedClustersLocked(org) {
		if st.Name == name {
			return st.ID
		}
	}
	return ""
}

// queueIDByKeyLocked is the ID of the queue key in org's cluster named
// cluster, "" when there is none; f.mu must be held.
func (f *Fake) queueIDByKeyLocked(org, cluster, key string) string {
	for _, st := range f.sortedClustersLocked(org) {
		if st.Name != cluster {
			continue
		}
		for _, q := range sortedQueues(st) {
			if q.Key == key {
				return q.ID
			}
		}
	}
	return ""
}

// SetQueueMetricsNull makes the metrics of a queue (by cluster name and
// queue key) null, as for an organization without advanced queue metrics,
// or not.
func (f *Fake) SetQueueMetricsNull(org, cluster, queue string, null bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id := f.queueIDByKeyLocked(org, cluster, queue); id != "" {
		f.graphQLStateLocked().null[id] = null
	}
}

// SetQueueMetrics fixes a queue's metrics; nil lets them move with the
// clock again.
func (f *Fake) SetQueueMetrics(org, cluster, queue string, m *QueueMetricsValues) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.queueIDByKeyLocked(org, cluster, queue)
	if id == "" {
		return
	}
	st := f.graphQLStateLocked()
	if m == nil {
		delete(st.fixed, id)
		return
	}
	c := *m
	st.fixed[id] = &c
}

// SetGraphQLErrors makes every GraphQL answer a 200 with these messages in
// its errors array and null data; none restores normal answers.
func (f *Fake) SetGraphQLErrors(messages ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.graphQLStateLocked().errors = append([]string(nil), messages...)
}

// SetGraphQLLimits sets the complexity points allowed per five-minute
// window, per organization and per token; 0 means unlimited (the default;
// the headers then advertise UnlimitedRateLimit).
func (f *Fake) SetGraphQLLimits(org, user int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.graphQLStateLocked()
	st.orgLimit, st.userLimit = org, user
}

// QueueMetricsAt returns the metrics a moving queue reports at time t: its
// bucket starts at t truncated to the minute, and the values are derived
// from the queue's UUID and the bucket.
func QueueMetricsAt(queueUUID string, t time.Time) QueueMetricsValues {
	bucket := t.UTC().Truncate(time.Minute)
	sum := sha256.Sum256([]byte(queueUUID + bucket.Format(time.RFC3339)))
	p50 := float64(int(sum[0])%120) + 0.5 // up to two minutes
	return QueueMetricsValues{
		Timestamp:  bucket,
		JobsPassed: int(sum[1]) % 40,
		JobsFailed: int(sum[2]) % 5,
		WaitMin:    float64(int(sum[3])%10) / 10 * p50,
		WaitP50:    p50,
		WaitP95:    p50 * 2.5,
		WaitMax:    p50*3 + float64(sum[4]%30),
	}
}

// graphQLRequest is the body the fake accepts.
type graphQLRequest struct {
	Query         string `json:"query"`
	OperationName string `json:"operationName"`
	Variables     struct {
		Org      string `json:"org"`
		Cluster  string `json:"cluster"`
		Clusters int    `json:"clusters"`
		Queues   int    `json:"queues"`
		After    string `json:"after"`
	} `json:"variables"`
}

func (f *Fake) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	f.serve(w, r, func(r *http.Request, now time.Time, resp *response, ft *Fault) { f.handleGraphQL(r, now, resp, ft) })
}

func gqlErrors(status int, resp *response, msgs ...string) {
	type msg struct {
		Message string `json:"message"`
	}
	list := make([]msg, len(msgs))
	for i, m := range msgs {
		list[i] = msg{m}
	}
	resp.json(status, map[string]any{"data": nil, "errors": list})
}

func (f *Fake) handleGraphQL(r *http.Request, now time.Time, resp *response, ft *Fault) {
	if ft != nil && ft.Status != 0 {
		faultResponse(ft, resp)
		return
	}
	if r.Method != http.MethodPost {
		resp.header.Set("Allow", http.MethodPost)
		gqlErrors(http.StatusMethodNotAllowed, resp, "Method Not Allowed")
		return
	}
	token := bearerToken(r.Header.Get("Authorization"))
	var req graphQLRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	info, known := f.tokens[token]
	switch {
	case token == "" || !known:
		gqlErrors(http.StatusUnauthorized, resp, MsgGraphQLUnauthorized)
		return
	case err != nil:
		gqlErrors(http.StatusBadRequest, resp, "Invalid JSON body")
		return
	}
	st := f.graphQLStateLocked()
	requested := requestedPoints(&req)
	if !f.chargeLocked(st, resp, token, req.Variables.Org, now, 0) {
		gqlErrors(http.StatusTooManyRequests, resp, MsgGraphQLRateLimited)
		return
	}
	if len(st.errors) > 0 {
		gqlErrors(http.StatusOK, resp, st.errors...)
		return
	}
	if msg := checkOperation(&req); msg != "" {
		gqlErrors(http.StatusOK, resp, msg)
		return
	}
	var org any
	actual := 1
	if _, ok := f.orgs[req.Variables.Org]; ok && (info.orgs == nil || info.orgs[req.Variables.Org]) {
		org, actual = f.answerLocked(st, &req, now)
	}
	f.chargeLocked(st, resp, token, req.Variables.Org, now, min(actual, requested))
	resp.json(http.StatusOK, map[string]any{"data": map[string]any{"organization": org}})
}

// checkOperation returns why the fake cannot answer req, "" when it can.
func checkOperation(req *graphQLRequest) string {
	v := req.Variables
	switch {
	case req.OperationName != "QueueMetrics" && req.OperationName != "ClusterQueues",
		!strings.Contains(req.Query, "query "+req.OperationName+"("):
		return fmt.Sprintf("the fake answers only the operations QueueMetrics and ClusterQueues, not %q", req.OperationName)
	case v.Queues < 1 || v.Queues > 500, req.OperationName == "QueueMetrics" && (v.Clusters < 1 || v.Clusters > 500):
		return "first must be between 1 and 500"
	}
	return ""
}

// requestedPoints is Buildkite's requested complexity of req: objects 1,
// connection nodes at their page size.
func requestedPoints(req *graphQLRequest) int {
	if req.OperationName == "ClusterQueues" {
		return 5 + 3*req.Variables.Queues
	}
	c, q := req.Variables.Clusters, req.Variables.Queues
	return 4 + 4*c + 3*c*q
}

// chargeLocked adds points to the organization's and the token's windows
// and sets the rate-limit headers; false when a window was already spent
// (nothing is charged then).
func (f *Fake) chargeLocked(st *graphQLState, resp *response, token, org string, now time.Time, points int) bool {
	ow, uw := pointsWindowAt(st.orgWindows, org, now), pointsWindowAt(st.userWindow, token, now)
	spent := (st.orgLimit > 0 && ow.used >= st.orgLimit) || (st.userLimit > 0 && uw.used >= st.userLimit)
	if !spent {
		ow.used += points
		uw.used += points
	}
	for _, b := range [...]struct {
		prefix string
		limit  int
		w      *pointsWindow
	}{{"RateLimit-", st.orgLimit, ow}, {"RateLimit-User-", st.userLimit, uw}} {
		limit := b.limit
		if limit <= 0 {
			limit = UnlimitedRateLimit
		}
		reset := int(b.w.start.Add(GraphQLWindow).Sub(now).Seconds() + 0.999)
		resp.header.Set(b.prefix+"Limit", fmt.Sprint(limit))
		resp.header.Set(b.prefix+"Remaining", fmt.Sprint(limit-b.w.used))
		resp.header.Set(b.prefix+"Reset", fmt.Sprint(max(reset, 0)))
	}
	return !spent
}

func pointsWindowAt(m map[string]*pointsWindow, key string, now time.Time) *pointsWindow {
	w := m[key]
	if w == nil || !now.Before(w.start.Add(GraphQLWindow)) {
		w = &pointsWindow{start: now}
		m[key] = w
	}
	return w
}

// answerLocked builds data.organization for req and its actual complexity.
// Clusters are listed by name, queues by key (then by ID, which also
// orders the cursors).
func (f *Fake) answerLocked(st *graphQLState, req *graphQLRequest, now time.Time) (any, int) {
	v := req.Variables
	if req.OperationName == "ClusterQueues" {
		if c := f.clusters[v.Org][v.Cluster]; c != nil {
			conn, points := queuesConnection(st, c, v.Queues, v.After, now)
			return map[string]any{"cluster": map[string]any{"queues": conn}}, 2 + points
		}
		return map[string]any{"cluster": nil}, 2
	}
	clusters := slices.SortedFunc(maps.Values(f.clusters[v.Org]), func(a, b *clusterState) int {
		return strings.Compare(sortKey(a.Name, a.ID), sortKey(b.Name, b.ID))
	})
	keys := make([]string, len(clusters))
	for i, c := range clusters {
		keys[i] = sortKey(c.Name, c.ID)
	}
	from := afterCursor(keys, v.After)
	to := min(from+v.Clusters, len(keys))
	edges := []any{}
	points := 4
	for i, c := range clusters[from:to] {
		conn, qp := queuesConnection(st, c, v.Queues, "", now)
		points += 1 + qp
		edges = append(edges, map[string]any{"cursor": cursorOf(keys[from+i]), "node": map[string]any{"uuid": c.ID, "name": c.Name, "queues": conn}})
	}
	return map[string]any{"clusters": map[string]any{"edges": edges, "pageInfo": pageInfo(keys, to)}}, points
}

// sortKey orders clusters by name and queues by key, then by ID.
func sortKey(name, id string) string { return name + "\x00" + id }

// queuesConnection is a page of c's queues and its actual complexity.
func queuesConnection(st *graphQLState, c *clusterState, first int, after string, now time.Time) (map[string]any, int) {
	queues := slices.SortedFunc(maps.Values(c.queues), func(a, b *Queue) int {
		return strings.Compare(sortKey(a.Key, a.ID), sortKey(b.Key, b.ID))
	})
	keys := make([]string, len(queues))
	for i, q := range queues {
		keys[i] = sortKey(q.Key, q.ID)
	}
	from := afterCursor(keys, after)
	to := min(from+first, len(keys))
	edges := []any{}
	points := 3 // queues, edges, pageInfo
	for i, q := range queues[from:to] {
		var metrics any
		points++
		if !st.null[q.ID] {
			m := QueueMetricsAt(q.ID, now)
			if st.fixed[q.ID] != nil {
				m = *st.fixed[q.ID]
			}
			metrics = map[string]any{
				"timestamp":       m.Timestamp.UTC().Format(time.RFC3339),
				"jobsPassedCount": m.JobsPassed,
				"jobsFailedCount": m.JobsFailed,
				"waitTimeSec":     map[string]any{"min": m.WaitMin, "max": m.WaitMax, "p50": m.WaitP50, "p95": m.WaitP95},
			}
			points += 2
		}
		edges = append(edges, map[string]any{"cursor": cursorOf(keys[from+i]), "node": map[string]any{"uuid": q.ID, "key": q.Key, "metrics": metrics}})
	}
	return map[string]any{"edges": edges, "pageInfo": pageInfo(keys, to)}, points
}

func cursorOf(name string) string { return base64.StdEncoding.EncodeToString([]byte("fake:" + name)) }

// afterCursor is the index of the first name after cursor (0 for none or
// an invalid cursor, as the start).
func afterCursor(sorted []string, cursor string) int {
	b, err := base64.StdEncoding.DecodeString(cursor)
	name, ok := strings.CutPrefix(string(b), "fake:")
	if cursor == "" || err != nil || !ok {
		return 0
	}
	return sort.Search(len(sorted), func(i int) bool { return sorted[i] > name })
}

func pageInfo(sorted []string, to int) map[string]any {
	var end any
	if to > 0 {
		end = cursorOf(sorted[to-1])
	}
	return map[string]any{"hasNextPage": to < len(sorted), "endCursor": end}
}
