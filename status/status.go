// Package status serves the exporter's status page: what the latest
// collections of every organization saw, for people without Grafana at hand.
//
// The page is rendered on the server with html/template and refreshes itself
// every 30 seconds; ?format=json returns the same data (a Page) for scripts.
// It only reads collector.Exporter.Status: loading it never calls the
// Buildkite API, and nothing on it can reveal the API token (the data holds
// none, and every error text is redacted once more on the way out).
package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// TopN is how many agents the "idle the longest" and "running the longest"
// tables list.
const TopN = 10

// DepartedShown is how many of the most recently departed agents the page
// lists; the total is shown beside them.
const DepartedShown = 100

// RefreshSeconds is how often the HTML page reloads itself.
const RefreshSeconds = 30

// Page is the whole status document: the template's data and, as is, the
// ?format=json answer. Times are RFC 3339 in UTC, durations are seconds,
// errors are strings.
type Page struct {
	GeneratedAt   time.Time      `json:"generated_at"`
	MetricsPath   string         `json:"metrics_path"`
	Organizations []Organization `json:"organizations"`
}

// Organization is what the exporter last saw of one organization.
type Organization struct {
	Name string `json:"organization"`
	// Collected is false until the first scrape collected the organization.
	Collected bool `json:"collected"`
	// OK: the latest collection listed every page. When false (and
	// Collected), the fleet tables below are empty: a failed listing keeps
	// no partial numbers.
	OK bool `json:"ok"`
	// Latest is the latest collection; Collections the recent ones, newest
	// first (Latest included).
	Latest      *Collection  `json:"latest,omitempty"`
	Collections []Collection `json:"collections"`

	// Fleet numbers of the latest collection; only when it succeeded.
	Agents *AgentTotals `json:"agents,omitempty"`
	// Queues sorted by cluster (unclustered first), then queue.
	Queues      []Queue      `json:"queues"`
	Versions    []Version    `json:"versions"`
	LongestIdle []IdleAgent  `json:"longest_idle"`
	LongestJobs []RunningJob `json:"longest_running_jobs"`

	// Departed agents within --collector.agent-retention, newest first, at
	// most DepartedShown of them; kept whether or not the latest listing
	// succeeded. DepartedTotal counts them all.
	Departed      []DepartedAgent `json:"departed"`
	DepartedTotal int             `json:"departed_total"`

	// Clusters is the latest clusters read; nil with
	// --no-collector.clusters or before the first.
	Clusters *ClustersRead `json:"clusters,omitempty"`
}

// ClustersRead is the outcome of the latest read of clusters and queues.
type ClustersRead struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"` // as logged; "" when OK
	// PausedQueues are the queues whose dispatch is paused, from the last
	// good read (kept when the latest failed).
	PausedQueues []Queue `json:"paused_queues"`
}

// Collection is one collection of one organization.
type Collection struct {
	Start           time.Time  `json:"start"`
	End             time.Time  `json:"end"`
	OK              bool       `json:"ok"`
	DurationSeconds float64    `json:"duration_seconds"`
	Pages           int        `json:"pages"`
	Requests        int64      `json:"requests"`
	Agents          int        `json:"agents"` // agents listed; 0 when the listing failed
	RateLimit       *RateLimit `json:"rate_limit,omitempty"`
	// Error is the error as logged (redacted); Problem says in plain words
	// what went wrong and Advice what to do about it. All "" on success.
	Error   string `json:"error,omitempty"`
	Problem string `json:"problem,omitempty"`
	Advice  string `json:"advice,omitempty"`
}

// RateLimit is the RateLimit-* headers of the collection's latest response.
type RateLimit struct {
	Limit        int       `json:"limit"`
	Remaining    int       `json:"remaining"` // may be negative
	ResetSeconds int       `json:"reset_seconds"`
	ResetAt      time.Time `json:"reset_at"` // when the window resets, as estimated from the response time
}

// AgentTotals counts the agents of the latest listing, each agent once.
type AgentTotals struct {
	Listed    int `json:"listed"`
	Connected int `json:"connected"`
	Busy      int `json:"busy"`
	Idle      int `json:"idle"`
	Paused    int `json:"paused"`
}

// Queue is one queue's fleet gauges. An agent serving several queues counts
// in each.
type Queue struct {
	// Cluster is the buildkite_cluster label: the cluster's name, its ID
	// while the name is unknown, "" when unclustered.
	Cluster   string         `json:"buildkite_cluster"`
	Queue     string         `json:"queue"`
	Connected int            `json:"connected"`
	Busy      int            `json:"busy"`
	Idle      int            `json:"idle"`
	Paused    int            `json:"paused"`
	States    map[string]int `json:"states"` // agents by connection_state
	// Utilisation is busy/connected in [0, 1]; null when no agent is
	// connected.
	Utilisation *float64 `json:"utilisation"`
	// DispatchPaused: Buildkite dispatches no jobs to the queue (since
	// DispatchPausedAt, when given).
	DispatchPaused   bool       `json:"dispatch_paused"`
	DispatchPausedAt *time.Time `json:"dispatch_paused_at,omitempty"`
}

// Version is the number of agents running one agent version.
type Version struct {
	Version string         `json:"version"`
	Agents  int            `json:"agents"`
	Queues  map[string]int `json:"queues"` // agents per queue
}

// IdleAgent is an idle agent (connected, no job, not paused).
type IdleAgent struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Hostname string `json:"hostname"`
	Cluster  string `json:"buildkite_cluster"`
	Queue    string `json:"queue"`
	Version  string `json:"version"`
	// LastJobFinishedAt is null when the agent never ran a job (NeverUsed);
	// IdleSince is then when it connected (or was created).
	LastJobFinishedAt *time.Time `json:"last_job_finished_at"`
	NeverUsed         bool       `json:"never_used"`
	IdleSince         *time.Time `json:"idle_since"`
	// IdleSeconds is IdleSince to the end of the collection that saw it.
	IdleSeconds float64 `json:"idle_seconds"`
}

// RunningJob is the job of a busy agent.
type RunningJob struct {
	JobID          string    `json:"job_id"`
	State          string    `json:"state"`
	StartedAt      time.Time `json:"started_at"`
	RunningSeconds float64   `json:"running_seconds"` // to the end of the collection that saw it
	AgentID        string    `json:"agent_id"`
	AgentName      string    `json:"agent_name"`
	Hostname       string    `json:"hostname"`
	Cluster        string    `json:"buildkite_cluster"`
	Queue          string    `json:"queue"`
}

// DepartedAgent is an agent that left the list.
type DepartedAgent struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Hostname string    `json:"hostname"`
	Cluster  string    `json:"buildkite_cluster"`
	Queue    string    `json:"queue"`
	State    string    `json:"state"` // what Buildkite said afterwards, or "unknown"
	At       time.Time `json:"at"`    // when the exporter saw it gone
	LastSeen time.Time `json:"last_seen"`
}

// Option changes the handler.
type Option func(*handler)

// MetricsPath is the path that collects (--web.telemetry-path); the page
// points to it while an organization is not collected yet. Default /metrics.
func MetricsPath(path string) Option {
	return func(h *handler) {
		if path != "" {
			h.metricsPath = path
		}
	}
}

type handler struct {
	source      func() []collector.OrgStatus
	now         func() time.Time
	metricsPath string
}

// Handler serves the status page of what source returns (in production
// collector.Exporter.Status). now is the clock for "ago" texts (nil:
// time.Now). GET /status answers HTML, GET /status?format=json JSON.
func Handler(source func() []collector.OrgStatus, now func() time.Time, opts ...Option) http.Handler {
	if now == nil {
		now = time.Now
	}
	h := &handler{source: source, now: now, metricsPath: "/metrics"}
	for _, o := range opts {
		o(h)
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	format := r.URL.Query().Get("format")
	if format != "" && format != "html" && format != "json" {
		http.Error(w, `unknown format: use ?format=json, or none for HTML`, http.StatusBadRequest)
		return
	}
	page := Build(h.source(), h.now(), h.metricsPath)

	var buf bytes.Buffer
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if format == "json" {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(page); err != nil {
			http.Error(w, "cannot encode the status", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	} else {
		if err := pageTemplate.Execute(&buf, view{Page: page, Now: page.GeneratedAt, Refresh: RefreshSeconds}); err != nil {
			http.Error(w, "cannot render the status page", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		// No script at all; inline styles only.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	}
	w.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(buf.Bytes())
}

// Build turns the collector's status into the page's data, as of now.
func Build(orgs []collector.OrgStatus, now time.Time, metricsPath string) Page {
	p := Page{GeneratedAt: shown(now), MetricsPath: metricsPath, Organizations: make([]Organization, 0, len(orgs))}
	for _, o := range orgs {
		p.Organizations = append(p.Organizations, buildOrg(o))
	}
	return p
}

func buildOrg(o collector.OrgStatus) Organization {
	org := Organization{
		Name:        o.Organization,
		Collections: []Collection{},
		Queues:      []Queue{},
		Versions:    []Version{},
		LongestIdle: []IdleAgent{},
		LongestJobs: []RunningJob{},
		Departed:    []DepartedAgent{},
	}
	s := o.Latest
	history := o.History
	if s == nil && len(history) == 0 {
		return org
	}
	org.Collected = true
	if len(history) == 0 || (s != nil && !history[len(history)-1].End.Equal(s.End)) {
		// The latest snapshot is always the last entry of the history; be
		// safe if a caller hands them over separately.
		history = append(append([]collector.CollectionSummary(nil), history...), summaryOf(s))
	}
	for i := len(history) - 1; i >= 0; i-- {
		var observed time.Time
		if i == len(history)-1 && s != nil && s.HasRateLimit {
			observed = s.RateLimit.ObservedAt
		}
		org.Collections = append(org.Collections, collectionOf(history[i], observed))
	}
	latest := org.Collections[0]
	org.Latest = &latest
	org.OK = latest.OK
	if s == nil {
		return org
	}
	org.DepartedTotal = len(s.Departed)
	for _, d := range s.Departed[:min(len(s.Departed), DepartedShown)] {
		org.Departed = append(org.Departed, DepartedAgent{
			ID: d.ID, Name: d.Name, Hostname: d.Hostname, Cluster: d.Cluster, Queue: d.QueueLabel,
			State: d.State, At: shown(d.At), LastSeen: shown(d.LastSeen),
		})
	}
	org.Clusters = clustersOf(s)
	if s.Err != nil {
		return org
	}
	org.Agents = totals(s.Agents)
	for _, q := range s.Queues {
		org.Queues = append(org.Queues, queueOf(q, s.Dispatch))
	}
	org.Versions = versions(s)
	org.LongestIdle = longestIdle(s.Agents, s.End)
	org.LongestJobs = longestJobs(s.Agents, s.End)
	return org
}

// maxResetSeconds bounds a rate-limit reset shown on the page (a year).
const maxResetSeconds = 366 * 24 * 60 * 60

// shown is t in UTC for the page, or the zero time (not shown) when JSON
// could not encode it: its year, in UTC, is not within 1 to 9999. The
// collector already leaves out implausible agent times; this keeps the
// page answering whatever it is handed.
func shown(t time.Time) time.Time {
	if t = t.UTC(); t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}
	}
	return t
}

func summaryOf(s *collector.Snapshot) collector.CollectionSummary {
	return collector.CollectionSummary{
		Start: s.Start, End: s.End, Err: s.Err, Requests: s.Requests, Pages: s.Pages,
		Agents: len(s.Agents), HasRateLimit: s.HasRateLimit,
		RateLimit: collector.RateLimitSummary{Limit: s.RateLimit.Limit, Remaining: s.RateLimit.Remaining, Reset: s.RateLimit.Reset},
	}
}

// collectionOf converts a summary; observed is when its rate-limit headers
// arrived, zero when unknown (the collection's end is used instead).
func collectionOf(c collector.CollectionSummary, observed time.Time) Collection {
	out := Collection{
		Start:           shown(c.Start),
		End:             shown(c.End),
		OK:              c.Err == nil,
		DurationSeconds: c.End.Sub(c.Start).Seconds(),
		Pages:           c.Pages,
		Requests:        c.Requests,
		Agents:          c.Agents,
	}
	if c.HasRateLimit {
		if observed.IsZero() {
			observed = c.End
		}
		// Reset is as sent: bounded before it becomes a Duration.
		reset := time.Duration(min(max(c.RateLimit.Reset, 0), maxResetSeconds)) * time.Second
		out.RateLimit = &RateLimit{
			Limit: c.RateLimit.Limit, Remaining: c.RateLimit.Remaining, ResetSeconds: c.RateLimit.Reset,
			ResetAt: shown(observed.Add(reset)),
		}
	}
	if c.Err != nil {
		out.Error = ErrorText(c.Err)
		out.Problem, out.Advice = Explain(c.Err)
	}
	return out
}

func totals(agents []collector.AgentView) *AgentTotals {
	t := &AgentTotals{Listed: len(agents)}
	for i := range agents {
		a := &agents[i]
		if a.ConnectionState == "connected" {
			t.Connected++
		}
		if a.Busy() {
			t.Busy++
		}
		if a.Idle() {
			t.Idle++
		}
		if a.Paused {
			t.Paused++
		}
	}
	return t
}

// clustersOf is the snapshot's clusters read; nil when clusters are not
// read.
func clustersOf(s *collector.Snapshot) *ClustersRead {
	if s.ClustersErr == nil && !s.ClustersUp && s.Dispatch == nil {
		return nil
	}
	c := &ClustersRead{OK: s.ClustersUp, PausedQueues: []Queue{}}
	if s.ClustersErr != nil {
		c.Error = s.ClustersErr.Error()
	}
	for _, d := range s.Dispatch {
		if d.Paused {
			c.PausedQueues = append(c.PausedQueues, Queue{Cluster: d.Cluster, Queue: d.Queue, States: map[string]int{},
				DispatchPaused: true, DispatchPausedAt: timePtr(d.PausedAt)})
		}
	}
	return c
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// queueOf is a queue's gauges with its dispatch state, from dispatch
// (sorted by cluster, then queue).
func queueOf(q collector.QueueCounts, dispatch []collector.QueueDispatch) Queue {
	out := Queue{
		Cluster: q.Cluster, Queue: q.Queue, Connected: q.Connected(), Busy: q.Busy, Idle: q.Idle, Paused: q.Paused,
		States: make(map[string]int, len(q.States)),
	}
	i := sort.Search(len(dispatch), func(i int) bool {
		d := dispatch[i]
		return d.Cluster > q.Cluster || d.Cluster == q.Cluster && d.Queue >= q.Queue
	})
	if i < len(dispatch) && dispatch[i].Cluster == q.Cluster && dispatch[i].Queue == q.Queue && dispatch[i].Paused {
		out.DispatchPaused, out.DispatchPausedAt = true, timePtr(dispatch[i].PausedAt)
	}
	for k, v := range q.States {
		out.States[k] = v
	}
	if out.Connected > 0 {
		// A stopping agent finishing its job is busy but not connected:
		// cap at 1 rather than show more than full.
		u := min(float64(q.Busy)/float64(out.Connected), 1)
		out.Utilisation = &u
	}
	return out
}

// versions counts agents per version (each agent once) with the per-queue
// breakdown of the snapshot; most common first.
func versions(s *collector.Snapshot) []Version {
	byVersion := map[string]*Version{}
	get := func(v string) *Version {
		if byVersion[v] == nil {
			byVersion[v] = &Version{Version: v, Queues: map[string]int{}}
		}
		return byVersion[v]
	}
	for i := range s.Agents {
		get(s.Agents[i].Version).Agents++
	}
	for _, vc := range s.Versions {
		queue := vc.Queue
		if vc.Cluster != "" {
			queue = vc.Cluster + "/" + vc.Queue
		}
		get(vc.Version).Queues[queue] += vc.Agents
	}
	out := make([]Version, 0, len(byVersion))
	for _, v := range byVersion {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Agents != out[j].Agents {
			return out[i].Agents > out[j].Agents
		}
		return out[i].Version > out[j].Version
	})
	return out
}

// longestIdle: idle agents by the time they became idle, oldest first: the
// end of their last job, or for agents that never ran one, when they
// connected (or were created).
func longestIdle(agents []collector.AgentView, asOf time.Time) []IdleAgent {
	var out []IdleAgent
	for i := range agents {
		a := &agents[i]
		if !a.Idle() {
			continue
		}
		ia := IdleAgent{ID: a.ID, Name: a.Name, Hostname: a.Hostname, Cluster: a.Cluster, Queue: a.QueueLabel, Version: a.Version}
		since := shown(a.LastJobFinishedAt)
		if since.IsZero() {
			ia.NeverUsed = true
			since = shown(a.ConnectedAt)
			if since.IsZero() {
				since = shown(a.CreatedAt)
			}
		} else {
			t := since
			ia.LastJobFinishedAt = &t
		}
		if !since.IsZero() {
			t := since
			ia.IdleSince = &t
			ia.IdleSeconds = max(asOf.Sub(since).Seconds(), 0)
		}
		out = append(out, ia)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.IdleSince == nil) != (b.IdleSince == nil) {
			return a.IdleSince == nil // unknown start: listed first, as possibly the oldest
		}
		if a.IdleSince != nil && !a.IdleSince.Equal(*b.IdleSince) {
			return a.IdleSince.Before(*b.IdleSince)
		}
		return a.Name < b.Name
	})
	if out == nil {
		return []IdleAgent{}
	}
	return out[:min(len(out), TopN)]
}

// longestJobs: running jobs by start, oldest first. A job assigned but not
// started yet has no start and is left out.
func longestJobs(agents []collector.AgentView, asOf time.Time) []RunningJob {
	var out []RunningJob
	for i := range agents {
		a := &agents[i]
		if a.Job == nil || shown(a.Job.StartedAt).IsZero() {
			continue
		}
		out = append(out, RunningJob{
			JobID: a.Job.ID, State: a.Job.State, StartedAt: shown(a.Job.StartedAt),
			RunningSeconds: max(asOf.Sub(a.Job.StartedAt).Seconds(), 0),
			AgentID:        a.ID, AgentName: a.Name, Hostname: a.Hostname, Cluster: a.Cluster, Queue: a.QueueLabel,
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].StartedAt.Equal(out[j].StartedAt) {
			return out[i].StartedAt.Before(out[j].StartedAt)
		}
		return out[i].AgentName < out[j].AgentName
	})
	if out == nil {
		return []RunningJob{}
	}
	return out[:min(len(out), TopN)]
}

// explanation is what Explain says of one kind of error; problem may
// name the HTTP status of an *client.APIError.
type explanation struct {
	kind    error
	problem func(err error, code string) string
	advice  string
}

func fixed(s string) func(error, string) string { return func(error, string) string { return s } }

func withCode(before, after string) func(error, string) string {
	return func(_ error, code string) string { return before + code + after }
}

const rateLimitAdvice = "Wait for the reset. If it keeps happening, scrape less often, set --collector.min-interval (HA pairs), lower --collector.departure-lookups, or check what else uses the same token (the per-user limit is shared by every organization of the token)."

// explanations are tried in order; the first whose kind matches explains.
var explanations = []explanation{
	{client.ErrUnauthorized, withCode("Buildkite rejected the API token", ": it is missing, invalid or revoked."),
		"Check the token in BUILDKITE_API_TOKEN or the --buildkite.token-file file; create a new API access token with the read_agents scope if it was revoked."},
	{client.ErrForbidden, withCode("The API token may not read this organization's agents", "."), ""}, // advice names the scope
	{client.ErrNotFound, withCode("Buildkite does not know this organization", ", or the token cannot see it."),
		"Check the slug given to --buildkite.organization (as in buildkite.com/<slug>) and that the token's organizations include it."},
	{client.ErrRateLimited, rateLimitProblem, rateLimitAdvice},
	{client.ErrServer, withCode("Buildkite answered with a server error", "."),
		"Usually temporary: the next scrape retries. If it persists, check https://www.buildkitestatus.com/ or the proxy in --buildkite.api-url."},
	{client.ErrMalformed, fixed("The answer from Buildkite could not be read (malformed or cut short)."),
		"If it persists, check that --buildkite.api-url points at Buildkite's REST API and that no proxy alters the answers."},
	{client.ErrUnsafeLink, fixed("Buildkite or a proxy redirected the request to another host, where the exporter will not send the token."),
		"Check --buildkite.api-url: it must be the API itself or a proxy that answers without redirecting elsewhere."},
	{client.ErrPageLimit, fixed("Paging through the agent list did not end, or the API ignored the page parameter."),
		"The API or a proxy returned endless next-page links or the same page again; check --buildkite.api-url and any caching proxy."},
	{client.ErrRejected, withCode("Buildkite rejected the request", "."),
		"Check --buildkite.api-url and the organization slug; report a bug if they are right."},
	{context.DeadlineExceeded, fixed("The collection did not finish in time."),
		"Raise Prometheus' scrape_timeout (the exporter uses it minus --web.timeout-offset) or --buildkite.timeout, or raise --buildkite.page-concurrency for large fleets."},
	{context.Canceled, fixed("The scrape was cancelled before the collection finished."),
		"Prometheus gave up waiting or the exporter shut down; see the scrape timeout."},
}

// Explain says in plain words what a collection error means and what to do
// about it.
func Explain(err error) (problem, advice string) {
	var apiErr *client.APIError
	code := ""
	if errors.As(err, &apiErr) {
		code = fmt.Sprintf(" (HTTP %d)", apiErr.StatusCode)
	}
	for _, e := range explanations {
		if !errors.Is(err, e.kind) {
			continue
		}
		advice = e.advice
		if errors.Is(e.kind, client.ErrForbidden) {
			scope := "read_agents"
			if apiErr != nil && apiErr.Scope != "" {
				scope = apiErr.Scope
			}
			advice = "Give the token the " + scope + " scope and access to this organization (Buildkite → Personal Settings → API Access Tokens)."
		}
		return e.problem(err, code), advice
	}
	return "The exporter could not reach Buildkite.",
		"Check network access, DNS and proxy settings from the exporter to the host in --buildkite.api-url."
}

// rateLimitProblem says until when requests are held back, when known.
func rateLimitProblem(err error, _ string) string {
	var rl *client.RateLimitError
	if !errors.As(err, &rl) || rl.ResetAt.IsZero() {
		return "Buildkite's API rate limit for this organization is spent."
	}
	what := "Buildkite answered 429 Too Many Requests"
	if !rl.Sent {
		what = "The rate limit of an earlier 429 is still in force, so the exporter sent nothing"
	}
	whom := "this organization"
	if rl.Scope == client.ScopeRestUser {
		whom = "any organization of this token (the per-user limit)"
	}
	return what + "; no request goes to " + whom + " until " + rl.ResetAt.UTC().Format(time.RFC3339) + "."
}

// maxErrorRunes bounds an error text on the page.
const maxErrorRunes = 500

var (
	// Credentials that must never be shown, should any text ever carry
	// them: Authorization values, Buildkite token shapes, URL user info.
	bearerRE   = regexp.MustCompile(`(?i)\bbearer\s+[^\s"',;]+`)
	bkTokenRE  = regexp.MustCompile(`\bbk[a-z]{2}_[A-Za-z0-9_-]{8,}`)
	userinfoRE = regexp.MustCompile(`(?i)(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@`)
)

// ErrorText is err's text for the page: redacted of anything that looks
// like a credential, valid UTF-8, at most 500 runes.
func ErrorText(err error) string {
	if err == nil {
		return ""
	}
	return redact(err.Error())
}

func redact(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = bearerRE.ReplaceAllString(s, "[REDACTED]")
	s = bkTokenRE.ReplaceAllString(s, "[REDACTED]")
	s = userinfoRE.ReplaceAllString(s, "${1}[REDACTED]@")
	if utf8.RuneCountInString(s) > maxErrorRunes {
		r := []rune(s)
		s = string(r[:maxErrorRunes]) + "…"
	}
	return s
}
