// Package buildkitetest is a faithful fake of Buildkite's REST Agents and
// Clusters APIs and of the Agent Metrics API, for tests (like
// net/http/httptest) and for a demo (see cmd/buildkite-fake).
//
// Clusters: a test declares them with AddCluster(org, name, defaultQueue,
// queues...) (IDs ClusterID(org, name) and QueueID(clusterID, key)), or with
// PutCluster and PutQueue for full control; SetDispatchPaused pauses a
// queue's dispatch. An agent joins a cluster through Agent.ClusterQueueID
// (its queue) or Agent.ClusterID (the cluster's default queue); its web_url
// then names both UUIDs as the real one does, and unclustered agents get
// .../organizations/{org}/agents/{id}. An agent without Queue and without a
// queue= tag is listed with the "queue" it serves (its queue's key, its
// cluster's default queue key, or "default"), as today's API does;
// SetReportServedQueue(false), or Extra{"queue": Omit} for one agent, gives
// the older responses without it. Tokens added without scopes have
// read_clusters; without it the clusters endpoints answer 403 naming the
// scope. Once an organization has declared clusters, an agent token of the
// Agent Metrics API answers for its own cluster only (see Handler).
// DemoFleet is the demo's fleet layout for NewSimulator.
//
// It is written from Buildkite's wire format, not from this project's client, so
// that the client is tested against the API rather than against itself.
//
// Conventions the fake adds where Buildkite leaves room:
//   - An agent put with an empty ConnectionState is "connected", and one with a zero
//     CreatedAt gets the clock's time.
//   - A token added without scopes has read_agents, write_agents and read_clusters.
//   - Rate-limit windows are 60 s long and start with the first request counted in
//     them (per organization, and per token for the user variants), on the injected
//     clock. When unlimited, the headers advertise UnlimitedRateLimit.
//   - Check order: rate limit (429), token (401), route (404/405), scope (403),
//     organization (404), then the endpoint's own answers.
//   - Pause timeouts are recorded, not enforced: an agent stays paused until
//     resumed (the Simulator resumes agents whose timeout has passed).
//   - Only the documented routes exist; PUT .../agents/{id} (no such endpoint
//     in Buildkite's REST API) answers 405, unknown paths 404 {"message":"Not Found"}.
package buildkitetest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Buildkite's messages, exactly.
const (
	MsgUnauthorized       = "Authentication required. Please supply a valid API Access Token: https://buildkite.com/docs/apis/rest-api#authentication"
	MsgNoOrganization     = "No organization found"
	MsgNoAgent            = "No agent found"
	MsgCanOnlyStop        = "Can only stop connected agents"
	MsgAlreadyPaused      = "Agent is already paused"
	MsgOnlyConnectedPause = "Only connected agents may be paused"
	MsgNotPaused          = "Agent is not paused"
)

// Scopes the Agents API checks.
const (
	ScopeReadAgents  = "read_agents"
	ScopeWriteAgents = "write_agents"
)

// UnlimitedRateLimit is the limit the RateLimit headers advertise while no limit is
// set: large, so a client that paces itself on Remaining never waits in tests.
const UnlimitedRateLimit = 1000000

const (
	defaultPerPage      = 30
	maxPerPage          = 100
	defaultPauseTimeout = 5
	rateWindow          = 60 * time.Second
	jsonContentType     = "application/json; charset=utf-8"
	maxRequestBody      = 1 << 20
)

// Request is a request as the fake received it.
type Request struct {
	Method, Path, RawQuery, Host, Authorization string
	Time                                        time.Time // on the fake's clock
}

type tokenInfo struct {
	scopes map[string]bool
	orgs   map[string]bool // nil: every organization
}

type window struct {
	start time.Time
	count int
}

// Fake is Buildkite's Agents and Clusters API as an http.Handler. Routes, under /v2:
//
//	GET /v2/organizations/{org}/agents
//	GET /v2/organizations/{org}/agents/{id}
//	PUT /v2/organizations/{org}/agents/{id}/stop|pause|resume
//	GET /v2/organizations/{org}/clusters                  (read_clusters; paged)
//	GET /v2/organizations/{org}/clusters/{id}/queues      (read_clusters; paged)
//
// Clusters and queues are listed oldest first, then by ID, paged and linked
// as the agents list is.
//
// All methods are safe for concurrent use.
type Fake struct {
	mu          sync.Mutex
	orgs        map[string]map[string]*Agent
	tokens      map[string]tokenInfo
	now         func() time.Time
	orgLimit    int
	userLimit   int
	orgWindows  map[string]*window
	userWindows map[string]*window
	faults      []*faultEntry
	listHook    func(org string, page int)
	requests    []Request
	clusters    map[string]map[string]*clusterState // org -> cluster ID -> cluster
	noQueue     bool                                // SetReportServedQueue(false)
	linkOrigin  string                              // scheme://host the Link headers name; "" for the request's
	ignorePage  bool
}

// NewFake returns a fake with no organizations, tokens or limits, on the real clock.
func NewFake() *Fake {
	return &Fake{
		orgs:        map[string]map[string]*Agent{},
		tokens:      map[string]tokenInfo{},
		now:         time.Now,
		orgWindows:  map[string]*window{},
		userWindows: map[string]*window{},
		clusters:    map[string]map[string]*clusterState{},
		linkOrigin:  CanonicalOrigin,
	}
}

// CanonicalOrigin is what Buildkite's Link headers name whatever host a
// request went to (a proxy, a gateway, this fake): the default of
// SetLinkOrigin.
const CanonicalOrigin = "https://api.buildkite.com"

// AddToken makes token valid for every organization with the given scopes
// (read_agents, write_agents and read_clusters when none are given).
func (f *Fake) AddToken(token string, scopes ...string) {
	f.addToken(token, nil, scopes)
}

// AddTokenForOrgs makes token valid for these organizations only: any other
// answers 404 as an unknown organization does.
func (f *Fake) AddTokenForOrgs(token string, orgs []string, scopes ...string) {
	set := map[string]bool{}
	for _, o := range orgs {
		set[o] = true
	}
	f.addToken(token, set, scopes)
}

func (f *Fake) addToken(token string, orgs map[string]bool, scopes []string) {
	if len(scopes) == 0 {
		scopes = []string{ScopeReadAgents, ScopeWriteAgents, ScopeReadClusters}
	}
	s := map[string]bool{}
	for _, sc := range scopes {
		s[sc] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens[token] = tokenInfo{scopes: s, orgs: orgs}
}

// AddOrganization makes slug a known organization (with no agents, if new).
// Unknown organizations answer 404 {"message":"No organization found"}.
func (f *Fake) AddOrganization(slug string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orgLocked(slug)
}

func (f *Fake) orgLocked(slug string) map[string]*Agent {
	o := f.orgs[slug]
	if o == nil {
		o = map[string]*Agent{}
		f.orgs[slug] = o
	}
	return o
}

// PutAgent adds or replaces the agent with a.ID, creating the organization.
func (f *Fake) PutAgent(org string, a Agent) {
	c := a.clone()
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.ConnectionState == "" {
		c.ConnectionState = StateConnected
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = f.now()
	}
	f.orgLocked(org)[c.ID] = &c
}

// RemoveAgent deletes the agent entirely: the list omits it and get answers 404.
func (f *Fake) RemoveAgent(org, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.orgs[org], id)
}

// SetConnectionState sets the agent's state and, for lost, stopped, disconnected
// and connected, the matching *_at timestamp from the clock. Other fields (the job)
// are left alone. Only connected and stopping agents are listed; any is gettable.
func (f *Fake) SetConnectionState(org, id, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.orgs[org][id]
	if a == nil {
		return
	}
	now := f.now()
	a.ConnectionState = state
	switch state {
	case StateLost:
		a.LostAt = &now
	case StateStopped:
		a.StoppedAt = &now
	case StateDisconnected:
		a.DisconnectedAt = &now
	case StateConnected:
		a.ConnectedAt = &now
	}
}

// UpdateAgent calls mutate on the stored agent under the fake's lock (so mutate
// must not call the fake) and reports whether the agent exists.
func (f *Fake) UpdateAgent(org, id string, mutate func(*Agent)) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.orgs[org][id]
	if a == nil {
		return false
	}
	c := a.clone()
	mutate(&c)
	c = c.clone() // drop anything mutate kept a reference to
	c.ID = id     // the map key is the identity
	*a = c
	return true
}

// Agent returns a copy of the agent, in any state.
func (f *Fake) Agent(org, id string) (Agent, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.orgs[org][id]
	if a == nil {
		return Agent{}, false
	}
	return a.clone(), true
}

// Agents returns copies of all the organization's agents, in any state, sorted by ID.
func (f *Fake) Agents(org string) []Agent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Agent, 0, len(f.orgs[org]))
	for _, a := range f.orgs[org] {
		out = append(out, a.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SetReportServedQueue sets whether agents without a Queue and without a
// queue= tag are listed with the "queue" the API reports for them (the queue
// they serve: their cluster queue's key, their cluster's default queue key,
// or "default"), as today's API does; the default is true. false makes such
// agents lack "queue", as older API versions did. Extra{"queue": Omit} does
// the same for one agent.
func (f *Fake) SetReportServedQueue(report bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noQueue = !report
}

// renderAgentLocked renders a with its cluster placement; f.mu must be held.
func (f *Fake) renderAgentLocked(org, base string, a *Agent) object {
	p := f.placeLocked(org, a)
	queue := a.Queue
	if queue == "" && !f.noQueue && !hasQueueTag(a.MetaData) {
		queue = p.servedQueueKey()
	}
	return a.render(org, base, p, queue)
}

// SetClock replaces the clock used for timestamps, rate-limit windows and
// recorded requests.
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// SetRateLimit sets the requests allowed per organization per 60-second window;
// 0 means unlimited (the default). The RateLimit-* headers are sent either way.
func (f *Fake) SetRateLimit(limit int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.orgLimit = limit
}

// SetUserRateLimit sets the requests allowed per token per 60-second window (the
// RateLimit-User-* headers, 429 scope "rest_user"); 0 means unlimited (the default).
func (f *Fake) SetUserRateLimit(limit int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.userLimit = limit
}

// SetLinkOrigin makes the Link headers of list pages name origin
// (scheme://host). The default is CanonicalOrigin, as Buildkite's links name
// api.buildkite.com whatever host was asked; "" makes them name the host
// the request came to (older tests rely on that).
func (f *Fake) SetLinkOrigin(origin string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.linkOrigin = origin
}

// SetIgnorePage makes list requests ignore the page parameter and answer page 1
// (with page 1's Link header), as a caching proxy that drops the query would.
func (f *Fake) SetIgnorePage(ignore bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ignorePage = ignore
}

// InjectFault adds a fault after those already injected; remove takes it out
// (calling it again is harmless).
func (f *Fake) InjectFault(ft Fault) (remove func()) {
	e := &faultEntry{Fault: ft, left: -1}
	if ft.Times > 0 {
		e.left = ft.Times
	}
	f.mu.Lock()
	f.faults = append(f.faults, e)
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		e.removed = true
		f.faults = slices.DeleteFunc(f.faults, func(x *faultEntry) bool { return x == e })
	}
}

// OnListPage sets a hook called, without the fake's lock, before each list page is
// built, so a test can add or remove agents while a client pages. nil removes it.
func (f *Fake) OnListPage(hook func(org string, page int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listHook = hook
}

// Requests returns the requests received so far, oldest first.
func (f *Fake) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// ResetRequests forgets the recorded requests.
func (f *Fake) ResetRequests() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = nil
}

func (f *Fake) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now()
}

// takeFault returns the first matching fault with hits left. Match runs without
// the lock, so a matcher may inspect the fake.
func (f *Fake) takeFault(r *http.Request) *Fault {
	f.mu.Lock()
	faults := slices.Clone(f.faults)
	f.mu.Unlock()
	for _, e := range faults {
		if e.Match != nil && !e.Match(r) {
			continue
		}
		f.mu.Lock()
		ok := !e.removed && e.left != 0
		if ok && e.left > 0 {
			e.left--
			if e.left == 0 {
				e.removed = true
				f.faults = slices.DeleteFunc(f.faults, func(x *faultEntry) bool { return x == e })
			}
		}
		f.mu.Unlock()
		if ok {
			return &e.Fault
		}
	}
	return nil
}

// response is an answer built in memory so faults can rewrite it before it is sent.
type response struct {
	status   int
	header   http.Header
	body     []byte
	pad      int64 // whitespace inserted before the closing bracket
	truncate bool
}

func messageBody(msg string) []byte {
	b, _ := json.Marshal(map[string]string{"message": msg})
	return b
}

func (resp *response) json(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, messageBody(err.Error())
	}
	resp.status = status
	resp.body = b
	resp.header.Set("Content-Type", jsonContentType)
}

func (resp *response) message(status int, msg string) {
	resp.json(status, map[string]string{"message": msg})
}

func (resp *response) noContent() {
	resp.status = http.StatusNoContent
	resp.body = nil
	resp.header.Del("Content-Type")
}

func (resp *response) write(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range resp.header {
		h[k] = v
	}
	if resp.status == http.StatusNoContent || resp.status == http.StatusNotModified {
		w.WriteHeader(resp.status)
		return
	}
	body := resp.body
	h.Set("Content-Length", strconv.FormatInt(int64(len(body))+resp.pad, 10))
	w.WriteHeader(resp.status)
	if resp.truncate {
		// Short of Content-Length: net/http closes the connection after this.
		w.Write(body[:len(body)/2])
		return
	}
	at := len(body)
	if at > 0 && (body[at-1] == ']' || body[at-1] == '}') {
		at--
	}
	if _, err := w.Write(body[:at]); err != nil {
		return
	}
	if resp.pad > 0 {
		chunk := []byte(strings.Repeat(" ", 32<<10))
		for left := resp.pad; left > 0; {
			n := min(left, int64(len(chunk)))
			if _, err := w.Write(chunk[:n]); err != nil {
				return // the client gave up; stop streaming
			}
			left -= n
		}
	}
	w.Write(body[at:])
}

// ServeHTTP records the request, applies any matching fault, and answers as
// Buildkite would.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.serve(w, r, f.handle)
}

// serve is what every endpoint of the fake does around its own answer:
// record the request, apply any matching fault (delay, dropped connection,
// rewritten response), and write the answer that handle built.
func (f *Fake) serve(w http.ResponseWriter, r *http.Request, handle func(r *http.Request, now time.Time, resp *response, ft *Fault)) {
	f.mu.Lock()
	now := f.now()
	f.requests = append(f.requests, Request{
		Method:        r.Method,
		Path:          r.URL.Path,
		RawQuery:      r.URL.RawQuery,
		Host:          r.Host,
		Authorization: r.Header.Get("Authorization"),
		Time:          now,
	})
	f.mu.Unlock()

	ft := f.takeFault(r)
	if ft != nil && ft.Delay > 0 {
		t := time.NewTimer(ft.Delay)
		select {
		case <-r.Context().Done():
			t.Stop()
			// Answer nothing (returning would send an empty 200): the client
			// gave up, or the server is closing.
			panic(http.ErrAbortHandler)
		case <-t.C:
		}
	}
	if ft != nil && ft.CloseConnection {
		closeConnection(w)
		return
	}
	resp := &response{header: http.Header{}}
	handle(r, now, resp, ft)
	if ft != nil {
		ft.apply(resp)
	}
	resp.write(w)
}

// bearerToken extracts the token of "Bearer <token>" (the scheme is case-insensitive).
func bearerToken(h string) string {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

func closeConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	// HTTP/2 cannot hijack; aborting resets the stream, which is the same to a client.
	panic(http.ErrAbortHandler)
}

type routeKind int

const (
	routeList routeKind = iota + 1
	routeAgent
	routeAction
	routeClusters
	routeQueues
)

type route struct {
	kind         routeKind
	org, id, act string // id: the agent's, or the cluster's for routeQueues
}

// parseRoute splits /v2/organizations/{org}/agents[/{id}[/{action}]],
// /v2/organizations/{org}/clusters and .../clusters/{id}/queues.
func parseRoute(path string) (route, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/organizations/")
	if !ok {
		return route{}, false
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) < 2 || parts[0] == "" {
		return route{}, false
	}
	rt := route{org: parts[0]}
	switch parts[1] {
	case "clusters":
		return clustersRoute(rt, parts[2:])
	case "agents":
		return agentsRoute(rt, parts[2:])
	}
	return route{}, false
}

// clustersRoute reads what follows .../clusters: nothing, or {id}/queues.
func clustersRoute(rt route, rest []string) (route, bool) {
	switch {
	case len(rest) == 0:
		rt.kind = routeClusters
	case len(rest) == 2 && rest[0] != "" && rest[1] == "queues":
		rt.kind, rt.id = routeQueues, rest[0]
	default:
		return route{}, false
	}
	return rt, true
}

// agentsRoute reads what follows .../agents: nothing, {id} or {id}/{action}.
func agentsRoute(rt route, rest []string) (route, bool) {
	switch len(rest) {
	case 0:
		rt.kind = routeList
		return rt, true
	case 1:
		rt.kind, rt.id = routeAgent, rest[0]
	case 2:
		rt.kind, rt.id, rt.act = routeAction, rest[0], rest[1]
		if rt.act != "stop" && rt.act != "pause" && rt.act != "resume" {
			return route{}, false
		}
	default:
		return route{}, false
	}
	return rt, rt.id != ""
}

// needs returns the method and the scope of the route's endpoint.
func (rt route) needs() (method, scope string) {
	switch rt.kind {
	case routeAction:
		return http.MethodPut, ScopeWriteAgents
	case routeClusters, routeQueues:
		return http.MethodGet, ScopeReadClusters
	}
	return http.MethodGet, ScopeReadAgents
}

// orgFromPath is the organization a request counts against for rate limiting,
// even when the rest of the path is not a route.
func orgFromPath(path string) string {
	rest, ok := strings.CutPrefix(path, "/v2/organizations/")
	if !ok {
		return ""
	}
	org, _, _ := strings.Cut(rest, "/")
	return org
}

func (f *Fake) handle(r *http.Request, now time.Time, resp *response, ft *Fault) {
	token := bearerToken(r.Header.Get("Authorization"))
	f.mu.Lock()
	limited := f.countLocked(orgFromPath(r.URL.Path), token, now, resp)
	info, authed := f.tokens[token]
	f.mu.Unlock()
	if limited {
		return
	}
	if ft != nil && ft.Status != 0 {
		faultResponse(ft, resp)
		return
	}
	if !authed || token == "" {
		resp.message(http.StatusUnauthorized, MsgUnauthorized)
		return
	}
	rt, ok := parseRoute(r.URL.Path)
	if !ok {
		resp.message(http.StatusNotFound, "Not Found")
		return
	}
	want, scope := rt.needs()
	if r.Method != want {
		resp.header.Set("Allow", want)
		resp.message(http.StatusMethodNotAllowed, "Method Not Allowed")
		return
	}
	if !info.scopes[scope] {
		resp.message(http.StatusForbidden, fmt.Sprintf("Your access token doesn't have the %s scope", scope))
		return
	}
	f.mu.Lock()
	_, known := f.orgs[rt.org]
	f.mu.Unlock()
	if !known || (info.orgs != nil && !info.orgs[rt.org]) {
		resp.message(http.StatusNotFound, MsgNoOrganization)
		return
	}
	f.answer(r, rt, resp)
}

// answer is the endpoint's own answer, once the request passed the checks.
func (f *Fake) answer(r *http.Request, rt route, resp *response) {
	switch rt.kind {
	case routeList:
		f.list(r, rt.org, resp)
	case routeAgent:
		f.get(r, rt.org, rt.id, resp)
	case routeAction:
		f.action(r, rt, resp)
	case routeClusters, routeQueues:
		f.listClusters(r, rt, resp)
	}
}

// countLocked counts the request against its organization's and token's windows,
// sets the RateLimit headers, and answers 429 when a limit is exceeded.
func (f *Fake) countLocked(org, token string, now time.Time, resp *response) (limited bool) {
	ow := tick(f.orgWindows, org, now)
	uw := tick(f.userWindows, token, now)
	orgReset := setRateHeaders(resp.header, "RateLimit-", "rest", f.orgLimit, ow, now)
	userReset := setRateHeaders(resp.header, "RateLimit-User-", "rest_user", f.userLimit, uw, now)
	switch {
	case f.orgLimit > 0 && ow.count > f.orgLimit:
		resp.json(http.StatusTooManyRequests, rateLimitBody("rest", f.orgLimit, ow.count, orgReset))
	case f.userLimit > 0 && uw.count > f.userLimit:
		resp.json(http.StatusTooManyRequests, rateLimitBody("rest_user", f.userLimit, uw.count, userReset))
	default:
		return false
	}
	return true
}

func tick(ws map[string]*window, key string, now time.Time) *window {
	w := ws[key]
	if w == nil || !now.Before(w.start.Add(rateWindow)) {
		w = &window{start: now}
		ws[key] = w
	}
	w.count++
	return w
}

func setRateHeaders(h http.Header, prefix, scope string, limit int, w *window, now time.Time) (reset int) {
	if limit <= 0 {
		limit = UnlimitedRateLimit
	}
	// Seconds until the window ends, rounded up so it is never 0 while the window holds.
	reset = int(math.Ceil(w.start.Add(rateWindow).Sub(now).Seconds()))
	h.Set(prefix+"Scope", scope)
	h.Set(prefix+"Limit", strconv.Itoa(limit))
	h.Set(prefix+"Remaining", strconv.Itoa(limit-w.count))
	h.Set(prefix+"Reset", strconv.Itoa(reset))
	if left := limit - w.count; limit != UnlimitedRateLimit && left < max(limit/10, 1) {
		h.Set(prefix+"Warning", warningText(left, reset))
	}
	return reset
}

// warningText is the fake's RateLimit-Warning: near the limit, and on a
// 429 of that budget.
func warningText(left, reset int) string {
	if left < 0 {
		return fmt.Sprintf("You have exceeded your API rate limit. Please wait %d seconds before making more requests.", reset)
	}
	return fmt.Sprintf("You are approaching your API rate limit: %d requests left until the window resets in %d seconds.", left, reset)
}

func rateLimitBody(scope string, limit, current, reset int) object {
	return object{
		{"message", fmt.Sprintf("You have exceeded your API rate limit. Please wait %d seconds before making more requests.", reset)},
		{"scope", scope},
		{"limit", limit},
		{"current", current},
		{"reset", reset},
	}
}

func parsePage(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func parsePerPage(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return defaultPerPage
	}
	return min(n, maxPerPage)
}

// apiBase is scheme://host as the client addressed the fake, for absolute URLs.
func apiBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (f *Fake) list(r *http.Request, org string, resp *response) {
	q := r.URL.Query()
	page, perPage := parsePage(q.Get("page")), parsePerPage(q.Get("per_page"))

	f.mu.Lock()
	hook, origin := f.listHook, f.linkOrigin
	if f.ignorePage {
		page = 1
	}
	f.mu.Unlock()
	if hook != nil {
		hook(org, page)
	}

	// Blank filters are ignored, as Rails' params.present? would.
	type filter struct {
		want  string
		value func(*Agent) string
	}
	var filters []filter
	for _, fl := range []filter{
		{"name", func(a *Agent) string { return a.Name }},
		{"hostname", func(a *Agent) string { return a.Hostname }},
		{"version", func(a *Agent) string { return a.Version }},
		{"cluster_queue_id", func(a *Agent) string { return f.placeLocked(org, a).queueID }}, // called under f.mu
	} {
		if want := q.Get(fl.want); want != "" {
			filters = append(filters, filter{want, fl.value})
		}
	}
	match := func(a *Agent) bool {
		if a.ConnectionState != StateConnected && a.ConnectionState != StateStopping {
			return false
		}
		for _, fl := range filters {
			if fl.value(a) != fl.want {
				return false
			}
		}
		return true
	}
	base := apiBase(r)
	f.mu.Lock()
	var agents []*Agent
	for _, a := range f.orgs[org] {
		if match(a) {
			agents = append(agents, a)
		}
	}
	// Oldest first, so agents that join push later ones onto later pages.
	slices.SortFunc(agents, func(a, b *Agent) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	total := len(agents)
	out := []object{}
	if start := (page - 1) * perPage; start < total {
		for _, a := range agents[start:min(start+perPage, total)] {
			out = append(out, f.renderAgentLocked(org, base, a))
		}
	}
	f.mu.Unlock()

	if link := linkHeader(r, origin, page, perPage, total); link != "" {
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

// linkHeader builds Buildkite's Link header: next and last unless on (or past) the
// last page, prev and first unless on the first; none when one page holds all.
// The URLs name origin when set, else the request's own scheme and host.
func linkHeader(r *http.Request, origin string, page, perPage, total int) string {
	last := max(1, (total+perPage-1)/perPage)
	if last == 1 {
		return ""
	}
	u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
	if r.TLS != nil {
		u.Scheme = "https"
	}
	if o, err := url.Parse(origin); origin != "" && err == nil {
		u.Scheme, u.Host = o.Scheme, o.Host
	}
	at := func(p int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		u.RawQuery = q.Encode()
		return u.String()
	}
	var links []string
	add := func(p int, rel string) { links = append(links, fmt.Sprintf("<%s>; rel=%q", at(p), rel)) }
	if page < last {
		add(page+1, "next")
	}
	if page > 1 {
		add(page-1, "prev")
		add(1, "first")
	}
	if page < last {
		add(last, "last")
	}
	return strings.Join(links, ", ")
}

func (f *Fake) get(r *http.Request, org, id string, resp *response) {
	base := apiBase(r)
	f.mu.Lock()
	a := f.orgs[org][id]
	var o object
	if a != nil {
		o = f.renderAgentLocked(org, base, a)
	}
	f.mu.Unlock()
	if a == nil {
		resp.message(http.StatusNotFound, MsgNoAgent)
		return
	}
	resp.json(http.StatusOK, o)
}

// actionBody holds the optional properties of stop and pause. Values arrive as JSON
// booleans/numbers or, from form-minded clients, strings; Rails accepts both.
type actionBody struct {
	Force   json.RawMessage `json:"force"`
	Note    *string         `json:"note"`
	Timeout json.RawMessage `json:"timeout_in_minutes"`
}

func (f *Fake) action(r *http.Request, rt route, resp *response) {
	var body actionBody
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
	if err == nil && len(strings.TrimSpace(string(raw))) > 0 {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		resp.message(http.StatusBadRequest, "Problems parsing JSON")
		return
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.orgs[rt.org][rt.id]
	if a == nil {
		resp.message(http.StatusNotFound, MsgNoAgent)
		return
	}
	now := f.now()
	switch rt.act {
	case "stop":
		if a.ConnectionState != StateConnected {
			resp.message(http.StatusBadRequest, MsgCanOnlyStop)
			return
		}
		force := true
		if b, ok := boolValue(body.Force); ok {
			force = b
		}
		if a.Job != nil && !force {
			// Finishes its job first, and is listed until then.
			a.ConnectionState = StateStopping
		} else {
			if a.Job != nil {
				a.Job = nil // canceled with its build
				a.LastJobFinishedAt = &now
			}
			a.ConnectionState = StateStopped
			a.StoppedAt = &now
			a.DisconnectedAt = &now
		}
	case "pause":
		if a.ConnectionState != StateConnected {
			resp.message(http.StatusUnprocessableEntity, MsgOnlyConnectedPause)
			return
		}
		if a.Paused {
			resp.message(http.StatusUnprocessableEntity, MsgAlreadyPaused)
			return
		}
		timeout := defaultPauseTimeout
		if n, ok := intValue(body.Timeout); ok {
			timeout = n
		}
		a.Paused = true
		a.PausedAt = &now
		a.PausedNote = ""
		if body.Note != nil {
			a.PausedNote = *body.Note
		}
		a.PausedTimeoutInMinutes = timeout
	case "resume":
		if !a.Paused {
			resp.message(http.StatusUnprocessableEntity, MsgNotPaused)
			return
		}
		a.Paused = false
		a.PausedAt = nil
		a.PausedNote = ""
		a.PausedTimeoutInMinutes = 0
	}
	resp.noContent()
}

func boolValue(raw json.RawMessage) (bool, bool) {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return false, false
	}
	switch v := v.(type) {
	case bool:
		return v, true
	case string:
		b, err := strconv.ParseBool(v)
		return b, err == nil
	}
	return false, false
}

func intValue(raw json.RawMessage) (int, bool) {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	switch v := v.(type) {
	case float64:
		return int(v), true
	case string:
		n, err := strconv.Atoi(v)
		return n, err == nil
	}
	return 0, false
}
