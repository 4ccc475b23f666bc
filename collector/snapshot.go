package collector

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// Snapshot is the immutable result of one collection of one organization.
// Metrics, the status page and logs all read snapshots; nothing but the
// collection talks to the API.
type Snapshot struct {
	Organization string
	Start, End   time.Time
	Requests     int64 // HTTP requests made, departure lookups included
	Pages        int
	Duplicates   int // agents seen twice while paging (pages shifted)
	// The REST budgets: the organization's (scope rest) and the token
	// user's (rest_user), each from the latest response that carried it.
	RateLimit        client.RateLimit
	HasRateLimit     bool
	UserRateLimit    client.RateLimit
	HasUserRateLimit bool
	Err              error // nil when every page was listed
	// Collected is when the collection whose result this is ended; zero
	// for a result made without one (a scrape's deadline, or a budget
	// that covered no listing yet).
	Collected time.Time
	// FieldErrors: agent members of an unexpected type or format, treated
	// as absent, counted over every listing so far; sorted by field.
	FieldErrors []FieldErrorCount

	// Fleet data: set only when Err is nil, so a failed listing never
	// produces partial numbers.
	Agents   []AgentView   // sorted by ID
	Queues   []QueueCounts // every known queue, sorted, zero-filled
	Versions []VersionCount
	Tags     []TagCount

	// Memory of the past: present whether or not the listing succeeded.
	Departed   []DepartedAgent  // departed within --collector.agent-retention, newest first
	Departures []DepartureCount // cumulative counts, sorted
	Lookups    int              // departure lookups made by this collection

	// Clusters, from the last good clusters read whether or not the
	// listing succeeded (with --collector.clusters).
	ClustersUp  bool            // the latest clusters read succeeded
	ClustersErr error           // of the latest clusters read
	Dispatch    []QueueDispatch // every queue the clusters API lists, sorted
}

// OK reports whether the listing succeeded.
func (s *Snapshot) OK() bool { return s.Err == nil }

// Duration is how long the collection took.
func (s *Snapshot) Duration() time.Duration { return s.End.Sub(s.Start) }

// FieldErrorCount is how many agent members named Field had an
// unexpected type or format, over every listing of the organization.
type FieldErrorCount struct {
	Field string
	Count float64
}

// AgentView is an agent with its label values worked out once: valid
// UTF-8, queues resolved, platform resolved.
type AgentView struct {
	client.Agent
	Cluster    string   // buildkite_cluster: the cluster's name, its ID while the name is unknown, "" when unclustered
	Queues     []string // sorted, distinct, never empty
	QueueLabel string   // Queues joined by ","
	OS, Arch   string

	// textIdentity is the identity labels as the text format writes them,
	// buildkite_cluster="…",id="…",name="…",organization="…",queue="…",
	// escaped: built once per
	// collection, it is most of the agent's series. plainText: no label
	// value of the agent needs escaping. Both are for WriteText, which
	// does without them (for views built elsewhere) at some cost.
	textIdentity string
	plainText    bool
}

// Busy reports whether the agent runs a job, whatever the job's state.
func (a *AgentView) Busy() bool { return a.Job != nil }

// Idle: connected, no job, not paused.
func (a *AgentView) Idle() bool {
	return a.ConnectionState == "connected" && a.Job == nil && !a.Paused
}

// QueueCounts are the fleet gauges of one queue of one cluster.
type QueueCounts struct {
	Cluster string // label value
	Queue   string
	States  map[string]int // by connection_state; connected and stopping always present
	Busy    int
	Idle    int
	Paused  int
}

// add counts an agent of the queue.
func (q *QueueCounts) add(a *AgentView) {
	q.States[a.ConnectionState]++
	if a.Busy() {
		q.Busy++
	}
	if a.Paused {
		q.Paused++
	}
	if a.Idle() {
		q.Idle++
	}
}

// Connected returns the number of connected agents.
func (q *QueueCounts) Connected() int { return q.States[stateConnected] }

// VersionCount is the number of agents of one version in one queue.
type VersionCount struct {
	Cluster, Queue, Version string
	Agents                  int
}

func (v *VersionCount) less(w *VersionCount) bool {
	if v.Cluster != w.Cluster {
		return v.Cluster < w.Cluster
	}
	if v.Queue != w.Queue {
		return v.Queue < w.Queue
	}
	return v.Version < w.Version
}

// TagCount is the number of agents with one meta_data value.
type TagCount struct {
	Key, Value string
	Agents     int
}

// DepartedAgent is an agent that left the list.
type DepartedAgent struct {
	ID, Name, Hostname string
	ClusterID          string
	Cluster            string // label value, set in snapshots
	Queues             []string
	QueueLabel         string
	State              string    // what Get said afterwards, or "unknown"
	At                 time.Time // when the exporter saw it gone
	LastSeen           time.Time // last successful listing that had it
}

// DepartureCount is the cumulative number of departures from one queue in
// one state.
type DepartureCount struct {
	Cluster, Queue, State string
	Count                 float64
}

const (
	stateConnected = "connected"
	stateStopping  = "stopping"
	stateUnknown   = "unknown"
	defaultQueue   = "default"
)

// zeroFilledDepartureStates start at zero for every known queue, so that
// increase() sees the first departure of each kind.
var zeroFilledDepartureStates = []string{"disconnected", "lost", "stopped", stateUnknown}

// maxLabelBytes bounds a label value taken from the API: a longer one is
// cut at the UTF-8 boundary before it, so that one agent's huge name or tag
// cannot swell every series, the status page and the memory of departed
// agents.
const maxLabelBytes = 1024

// labelValue makes s a valid label value whatever the API sent: valid
// UTF-8, at most maxLabelBytes.
func labelValue(s string) string {
	if len(s) <= maxLabelBytes && utf8.ValidString(s) { // the common case
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxLabelBytes {
		return s
	}
	n := maxLabelBytes
	for !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n]) // not keeping the long original alive
}

// cleanLabel reports whether labelValue would change s.
func cleanLabel(s string) bool { return len(s) <= maxLabelBytes && utf8.ValidString(s) }

// The window of plausible timestamps. One outside it (Buildkite has sent
// none, but a proxy or a bug might) is left out, as if null: before 2000
// it would make ages of centuries (older than 1678, more than a
// time.Duration holds), and years outside 1 to 9999 cannot be written as
// JSON. Within it, every age from a clock in this century fits.
var (
	earliestTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	latestTime   = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) // excluded
)

// plausible returns t, or the zero time when t is outside the window.
func plausible(t time.Time) time.Time {
	if t.Before(earliestTime) || !t.Before(latestTime) {
		return time.Time{}
	}
	return t
}

// plausibleTimes leaves out a's timestamps outside the window. The job is
// copied before it changes: the caller's agent stays as it was.
func plausibleTimes(a *client.Agent) {
	for _, t := range []*time.Time{&a.CreatedAt, &a.ConnectedAt, &a.DisconnectedAt, &a.LostAt, &a.StoppedAt, &a.LastJobFinishedAt, &a.PausedAt} {
		*t = plausible(*t)
	}
	if a.Job != nil && !a.Job.StartedAt.IsZero() && plausible(a.Job.StartedAt).IsZero() {
		job := *a.Job
		job.StartedAt = time.Time{}
		a.Job = &job
	}
}

// cleanStrings makes every string of a that becomes a label value a valid
// one. meta_data is copied before it changes.
func cleanStrings(a *client.Agent) {
	for _, s := range []*string{&a.ID, &a.Name, &a.ConnectionState, &a.Hostname, &a.IPAddress, &a.Version, &a.Queue, &a.OSID, &a.Arch, &a.UserAgent} {
		*s = labelValue(*s)
	}
	for _, m := range a.MetaData {
		if !cleanLabel(m) {
			md := make([]string, len(a.MetaData))
			for j, m := range a.MetaData {
				md[j] = labelValue(m)
			}
			a.MetaData = md
			break
		}
	}
}

// allClean reports whether no value needs labelValue.
func allClean(values ...string) bool {
	for _, v := range values {
		if len(v) > maxLabelBytes {
			return false
		}
	}
	return true
}

// newAgentView resolves an agent's queues and platform, cleans its
// strings (valid UTF-8, at most maxLabelBytes) and leaves out implausible
// timestamps; org is the organization label, clusters the last good
// clusters read (nil when none). Every consumer (metrics, the text
// exposition, the status page) reads agents through it.
func newAgentView(org string, a client.Agent, clusters *clusterView) AgentView {
	cluster := clusters.label(a.ClusterID)
	// Nearly always every string is short ASCII with nothing to escape:
	// one check of them all, rather than one per string for each concern.
	plain := plainASCII(org, cluster, a.ID, a.Name, a.ConnectionState, a.Hostname, a.IPAddress, a.Version, a.Queue,
		a.OSID, a.Arch, a.UserAgent) && plainASCII(a.MetaData...)
	clean := plain && allClean(cluster, a.ID, a.Name, a.ConnectionState, a.Hostname, a.IPAddress, a.Version, a.Queue,
		a.OSID, a.Arch, a.UserAgent) && allClean(a.MetaData...)
	if !clean {
		cluster = labelValue(cluster)
		cleanStrings(&a)
	}
	plausibleTimes(&a)
	osName, arch := a.Platform() // from os_id, arch and user_agent: plain when they are
	queues := agentQueues(&a, clusters.defaultQueueOf(a.ClusterID))
	v := AgentView{
		Agent:      a,
		Cluster:    cluster,
		Queues:     queues,
		QueueLabel: strings.Join(queues, ","),
		OS:         osName,
		Arch:       arch,
	}
	v.plainText = plain
	if !clean {
		v.OS, v.Arch = labelValue(osName), labelValue(arch)
		v.plainText = !needsEscaping(org, v.Cluster, v.ID, v.Name, v.QueueLabel, v.Hostname, v.Version, v.ConnectionState,
			v.OS, v.Arch, v.IPAddress) && !needsEscaping(v.MetaData...)
	}
	buf := make([]byte, 0, len(`buildkite_cluster="",id="",name="",organization="",queue=""`)+len(v.Cluster)+len(v.ID)+len(v.Name)+len(org)+len(v.QueueLabel))
	v.textIdentity = string(appendIdentity(buf, org, &v, v.plainText))
	return v
}

// agentQueues: the queue field when set, otherwise every non-empty queue=
// tag, otherwise clusterDefault (the key of its cluster's default queue)
// when known, otherwise "default".
func agentQueues(a *client.Agent, clusterDefault string) []string {
	if a.Queue != "" {
		return []string{a.Queue}
	}
	var queues []string
	for _, m := range a.MetaData {
		k, v, _ := strings.Cut(m, "=")
		if k == "queue" && v != "" && !slices.Contains(queues, v) {
			queues = append(queues, v)
		}
	}
	switch {
	case len(queues) == 0 && clusterDefault != "":
		return []string{clusterDefault}
	case len(queues) == 0:
		return []string{defaultQueue}
	}
	sort.Strings(queues)
	return queues
}

// tagValues returns the distinct values of key in meta_data. "key" and
// "key=" both give "". An empty queue= counts as not set.
func tagValues(metaData []string, key string) []string {
	var values []string
	for _, m := range metaData {
		k, v, _ := strings.Cut(m, "=")
		if k != key || (key == "queue" && v == "") || slices.Contains(values, v) {
			continue
		}
		values = append(values, v)
	}
	return values
}

// fleetCounts aggregates a listing into the per-queue, per-version and
// per-tag gauges, queues by cluster label and key. knownQueues are
// zero-filled.
func fleetCounts(agents []AgentView, knownQueues []queueLabel, tagKeys []string) ([]QueueCounts, []VersionCount, []TagCount) {
	queues := make(map[queueLabel]*QueueCounts, len(knownQueues))
	queue := func(l queueLabel) *QueueCounts {
		q, ok := queues[l]
		if !ok {
			q = &QueueCounts{Cluster: l.cluster, Queue: l.queue, States: map[string]int{stateConnected: 0, stateStopping: 0}}
			queues[l] = q
		}
		return q
	}
	for _, l := range knownQueues {
		queue(l)
	}
	type versionKey struct{ cluster, queue, version string }
	versions := map[versionKey]int{}
	type tagKey struct{ key, value string }
	tags := map[tagKey]int{}

	for i := range agents {
		a := &agents[i]
		for _, name := range a.Queues {
			queue(queueLabel{a.Cluster, name}).add(a)
			versions[versionKey{a.Cluster, name, a.Version}]++
		}
		for _, key := range tagKeys {
			for _, v := range tagValues(a.MetaData, key) {
				tags[tagKey{key, v}]++
			}
		}
	}

	queueList := make([]QueueCounts, 0, len(queues))
	for _, q := range queues {
		queueList = append(queueList, *q)
	}
	sort.Slice(queueList, func(i, j int) bool {
		a, b := &queueList[i], &queueList[j]
		return a.Cluster < b.Cluster || a.Cluster == b.Cluster && a.Queue < b.Queue
	})
	versionList := make([]VersionCount, 0, len(versions))
	for k, n := range versions {
		versionList = append(versionList, VersionCount{Cluster: k.cluster, Queue: k.queue, Version: k.version, Agents: n})
	}
	sort.Slice(versionList, func(i, j int) bool { return versionList[i].less(&versionList[j]) })
	tagList := make([]TagCount, 0, len(tags))
	for k, n := range tags {
		tagList = append(tagList, TagCount{Key: k.key, Value: k.value, Agents: n})
	}
	sort.Slice(tagList, func(i, j int) bool {
		if tagList[i].Key != tagList[j].Key {
			return tagList[i].Key < tagList[j].Key
		}
		return tagList[i].Value < tagList[j].Value
	})
	return queueList, versionList, tagList
}

// errorClass names the kind of failure, so a log line is written when the
// kind changes rather than on every scrape.
func errorClass(err error) string {
	for _, kind := range []error{
		client.ErrUnauthorized, client.ErrForbidden, client.ErrNotFound, client.ErrRateLimited,
		client.ErrServer, client.ErrMalformed, client.ErrUnsafeLink, client.ErrPageLimit, client.ErrRejected,
	} {
		if errors.Is(err, kind) {
			return kind.Error()
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "deadline"
	}
	return "request failed"
}
