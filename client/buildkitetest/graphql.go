package buildkitetest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
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
// schema gives them:
//
//	QueueMetrics($org, $clusters, $after, $queues): a page of the
//	    organization's clusters (by name), each with its first $queues queues
//	ClusterQueues($org, $cluster, $queues, $after): a page of one cluster's
//	    queues (by key), the cluster by UUID
//
// Authentication is "Authorization: Bearer <token>" with a token added by
// AddToken (any scopes: GraphQL access cannot be narrowed); an unknown one
// answers 401. An organization the token cannot see answers
// {"data":{"organization":null}}. Clusters and queues are those added with
// AddGraphQLQueue. A queue's metrics are null when SetQueueMetricsNull says
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

type gqlQueue struct {
	uuid, key string
	null      bool
	fixed     *QueueMetricsValues
}

type gqlCluster struct {
	uuid, name string
	queues     map[string]*gqlQueue // by key
}

type pointsWindow struct {
	start time.Time
	used  int
}

// graphQLState is the GraphQL API's part of a Fake, kept beside it like
// agentMetricsState and guarded by the Fake's mutex.
type graphQLState struct {
	clusters               map[string]map[string]*gqlCluster // org -> name -> cluster
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
		clusters:   map[string]map[string]*gqlCluster{},
		orgWindows: map[string]*pointsWindow{},
		userWindow: map[string]*pointsWindow{},
	}
	if prev, loaded := graphQLStates.LoadOrStore(key, st); loaded {
		return prev.(*graphQLState)
	}
	runtime.AddCleanup(f, func(k weak.Pointer[Fake]) { graphQLStates.Delete(k) }, key)
	return st
}

// GraphQLClusterUUID is the UUID the GraphQL API gives the cluster named
// cluster of org.
func GraphQLClusterUUID(org, cluster string) string { return fakeUUID("gql-cluster", org, cluster) }

// GraphQLQueueUUID is the UUID the GraphQL API gives a queue.
func GraphQLQueueUUID(org, cluster, queue string) string {
	return fakeUUID("gql-queue", org, cluster, queue)
}

func fakeUUID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// AddGraphQLQueue adds the queue key of the cluster named cluster to org's
// clusters as the GraphQL API lists them, creating the organization and
// the cluster. With no queue it adds the cluster alone.
func (f *Fake) AddGraphQLQueue(org, cluster string, queues ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orgLocked(org)
	st := f.graphQLStateLocked()
	if st.clusters[org] == nil {
		st.clusters[org] = map[string]*gqlCluster{}
	}
	c := st.clusters[org][cluster]
	if c == nil {
		c = &gqlCluster{uuid: GraphQLClusterUUID(org, cluster), name: cluster, queues: map[string]*gqlQueue{}}
		st.clusters[org][cluster] = c
	}
	for _, q := range queues {
		if c.queues[q] == nil {
			c.queues[q] = &gqlQueue{uuid: GraphQLQueueUUID(org, cluster, q), key: q}
		}
	}
}

// RemoveGraphQLCluster removes a cluster and its queues.
func (f *Fake) RemoveGraphQLCluster(org, cluster string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.graphQLStateLocked().clusters[org], cluster)
}

func (f *Fake) gqlQueueLocked(org, cluster, queue string) *gqlQueue {
	if c := f.graphQLStateLocked().clusters[org][cluster]; c != nil {
		return c.queues[queue]
	}
	return nil
}

// SetQueueMetricsNull makes a queue's metrics null (as for an organization
// without advanced queue metrics), or not.
func (f *Fake) SetQueueMetricsNull(org, cluster, queue string, null bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.gqlQueueLocked(org, cluster, queue); q != nil {
		q.null = null
	}
}

// SetQueueMetrics fixes a queue's metrics; nil lets them move with the
// clock again.
func (f *Fake) SetQueueMetrics(org, cluster, queue string, m *QueueMetricsValues) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if q := f.gqlQueueLocked(org, cluster, queue); q != nil {
		if m != nil {
			c := *m
			m = &c
		}
		q.fixed = m
	}
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
func (f *Fake) answerLocked(st *graphQLState, req *graphQLRequest, now time.Time) (any, int) {
	v := req.Variables
	clusters := st.clusters[v.Org]
	if req.OperationName == "ClusterQueues" {
		for _, c := range clusters {
			if c.uuid == v.Cluster {
				conn, points := queuesConnection(c, v.Queues, v.After, now)
				return map[string]any{"cluster": map[string]any{"queues": conn}}, 2 + points
			}
		}
		return map[string]any{"cluster": nil}, 2
	}
	names := make([]string, 0, len(clusters))
	for n := range clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	from := afterCursor(names, v.After)
	to := min(from+v.Clusters, len(names))
	edges := []any{}
	points := 4
	for _, n := range names[from:to] {
		c := clusters[n]
		conn, qp := queuesConnection(c, v.Queues, "", now)
		points += 1 + qp
		edges = append(edges, map[string]any{"cursor": cursorOf(n), "node": map[string]any{"uuid": c.uuid, "name": c.name, "queues": conn}})
	}
	return map[string]any{"clusters": map[string]any{"edges": edges, "pageInfo": pageInfo(names, to)}}, points
}

// queuesConnection is a page of c's queues and its actual complexity.
func queuesConnection(c *gqlCluster, first int, after string, now time.Time) (map[string]any, int) {
	keys := make([]string, 0, len(c.queues))
	for k := range c.queues {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	from := afterCursor(keys, after)
	to := min(from+first, len(keys))
	edges := []any{}
	points := 3 // queues, edges, pageInfo
	for _, k := range keys[from:to] {
		q := c.queues[k]
		var metrics any
		points++
		if !q.null {
			m := QueueMetricsAt(q.uuid, now)
			if q.fixed != nil {
				m = *q.fixed
			}
			metrics = map[string]any{
				"timestamp":       m.Timestamp.UTC().Format(time.RFC3339),
				"jobsPassedCount": m.JobsPassed,
				"jobsFailedCount": m.JobsFailed,
				"waitTimeSec":     map[string]any{"min": m.WaitMin, "max": m.WaitMax, "p50": m.WaitP50, "p95": m.WaitP95},
			}
			points += 2
		}
		edges = append(edges, map[string]any{"cursor": cursorOf(k), "node": map[string]any{"uuid": q.uuid, "key": q.key, "metrics": metrics}})
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
