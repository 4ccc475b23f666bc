package buildkitetest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// Agent is an agent as Buildkite's API returns it. The JSON field names are exactly
// the API's (id, graphql_id, url, web_url, name, connection_state, hostname,
// ip_address, user_agent, version, creator, created_at, job, last_job_finished_at,
// priority, meta_data, os_id, arch, queue, connected_at, disconnected_at, lost_at,
// stopped_at, paused, paused_at, paused_by, paused_note, paused_timeout_in_minutes).
//
// Nil pointers serialize as null. OSID and Arch are omitted when "" (as older
// API versions do). Queue "" is the queue the agent serves when it has no
// queue= tag (see Fake.SetReportServedQueue), else omitted. The fake fills url, web_url, graphql_id and creator itself, and
// paused_by with a plausible user while the agent is paused; creator is null for
// about one agent in four. The paused* members are sent only for a paused agent
// (absent otherwise, as in every published example); paused_note is null when
// "", meta_data [] when nil.
type Agent struct {
	ID, Name, ConnectionState, Hostname, IPAddress, UserAgent, Version string
	OSID, Arch, Queue                                                  string
	MetaData                                                           []string
	Priority                                                           *int
	CreatedAt                                                          time.Time

	ConnectedAt, DisconnectedAt, LostAt, StoppedAt, LastJobFinishedAt *time.Time

	Paused                 bool
	PausedAt               *time.Time
	PausedNote             string
	PausedTimeoutInMinutes int

	Job *Job

	// ClusterQueueID is the UUID of the agent's cluster queue. The API has no such
	// field on the agent, so it is not serialized; the list filter cluster_queue_id
	// matches it, and it shapes web_url as the real one does for clustered agents:
	// .../clusters/{cluster}/queues/{ClusterQueueID}/agents/{ID}, where cluster is
	// the declared cluster holding that queue (see AddCluster), else ClusterID,
	// else an implicit cluster of the organization (uuidFrom "cluster:"+org) that
	// the clusters endpoint does not list.
	ClusterQueueID string

	// ClusterID puts the agent in a cluster without naming its queue: it then
	// serves the cluster's default queue (web_url names DefaultQueueID). With
	// ClusterQueueID set it only disambiguates. "" with no ClusterQueueID:
	// unclustered, web_url .../organizations/{org}/agents/{ID}.
	ClusterID string

	// Extra holds fields merged into the JSON object: unknown fields, or known ones
	// whose value overrides the fake's (e.g. "priority": "high" to test a client's
	// tolerance). A value of Omit removes the field. Values are copied shallowly, so
	// treat them as immutable once handed to the fake.
	Extra map[string]any
}

// Job is an agent's current job. It is serialized with the other documented job
// fields (graphql_id, type, name, agent_query_rules, build_url, web_url, log_url,
// created_at, scheduled_at, ...) filled plausibly and deterministically from ID.
type Job struct {
	ID, State string
	StartedAt *time.Time
}

type omitField struct{}

// Omit, as a value in Agent.Extra, removes that field from the agent's JSON
// entirely, to mimic API versions that lack it.
var Omit any = omitField{}

// Connection states as the API spells them.
const (
	StateNeverConnected = "never_connected"
	StateConnected      = "connected"
	StateDisconnected   = "disconnected"
	StateStopping       = "stopping"
	StateStopped        = "stopped"
	StateLost           = "lost"
)

// clone deep-copies everything but Extra's values, so the fake's state never
// aliases a caller's.
func (a Agent) clone() Agent {
	c := a
	c.MetaData = slices.Clone(a.MetaData)
	c.Priority = clonePtr(a.Priority)
	c.ConnectedAt = clonePtr(a.ConnectedAt)
	c.DisconnectedAt = clonePtr(a.DisconnectedAt)
	c.LostAt = clonePtr(a.LostAt)
	c.StoppedAt = clonePtr(a.StoppedAt)
	c.LastJobFinishedAt = clonePtr(a.LastJobFinishedAt)
	c.PausedAt = clonePtr(a.PausedAt)
	if a.Job != nil {
		j := *a.Job
		j.StartedAt = clonePtr(a.Job.StartedAt)
		c.Job = &j
	}
	c.Extra = maps.Clone(a.Extra)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func ptr[T any](v T) *T { return &v }

// timestampLayout is Buildkite's: RFC 3339, UTC, milliseconds.
const timestampLayout = "2006-01-02T15:04:05.000Z"

func ts(t time.Time) string { return t.UTC().Format(timestampLayout) }

func tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return ts(*t)
}

// field is one key of a JSON object; object keeps the API's field order, which
// encoding/json's maps would not.
type field struct {
	key   string
	value any
}

type object []field

func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	err := o.encode(&buf)
	return buf.Bytes(), err
}

// encode writes o directly, recursing into nested objects itself: going through
// json.Marshal for them would re-validate their output, which dominates the cost
// of large lists.
func (o object) encode(buf *bytes.Buffer) error {
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(f.key)
		buf.Write(k)
		buf.WriteByte(':')
		if nested, ok := f.value.(object); ok {
			if err := nested.encode(buf); err != nil {
				return err
			}
			continue
		}
		v, err := json.Marshal(f.value)
		if err != nil {
			return fmt.Errorf("field %q: %w", f.key, err)
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return nil
}

// encodeList writes a JSON array of objects.
func encodeList(list []object) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, o := range list {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := o.encode(&buf); err != nil {
			return nil, err
		}
	}
	buf.WriteByte(']')
	return buf.Bytes(), nil
}

// merge applies extra: overrides in place, Omit deletes, new keys are appended
// in sorted order so the output is deterministic.
func (o object) merge(extra map[string]any) object {
	if len(extra) == 0 {
		return o
	}
	out := make(object, 0, len(o)+len(extra))
	seen := make(map[string]bool, len(o))
	for _, f := range o {
		seen[f.key] = true
		if v, ok := extra[f.key]; ok {
			if v == Omit {
				continue
			}
			f.value = v
		}
		out = append(out, f)
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if extra[k] != Omit {
			out = append(out, field{k, extra[k]})
		}
	}
	return out
}

// creator is the user who registered every agent; paused_by reuses it because the
// fake has no notion of which user owns a token.
func creator() object {
	return object{
		{"id", "2eba97bc-7cc7-427f-8feb-1008c72aa1d8"},
		{"graphql_id", "VXNlci0tLThmNzFlOWI1LTczMDEtNDI4ZS1hMjQ1LWUwOWI0YzI0OWRiZg=="},
		{"name", "Keith Pitt"},
		{"email", "me@keithpitt.com"},
		{"avatar_url", "https://www.gravatar.com/avatar/e14f55d3f939977cecbf51b64ff6f861"},
		{"created_at", "2015-05-09T21:05:59.874Z"},
	}
}

// creator is the registering user, or null for one agent in four (by a
// hash of its ID), as some real responses have it.
func (a *Agent) creator() any {
	h := fnv.New32a()
	h.Write([]byte(a.ID))
	if h.Sum32()%4 == 0 {
		return nil
	}
	return creator()
}

func graphqlID(kind, id string) string {
	return base64.StdEncoding.EncodeToString([]byte(kind + "---" + id))
}

// render builds the agent's JSON object. apiBase is scheme://host of the request,
// so url and build_url point back at the fake; p is the agent's cluster and
// queue, queue the "queue" field ("" omits it).
func (a *Agent) render(org, apiBase string, p placement, queue string) object {
	webURL := fmt.Sprintf("https://buildkite.com/organizations/%s/agents/%s", org, a.ID)
	if p.clusterID != "" {
		webURL = fmt.Sprintf("https://buildkite.com/organizations/%s/clusters/%s/queues/%s/agents/%s",
			org, p.clusterID, p.queueID, a.ID)
	}
	var job, pausedBy, pausedNote, pausedTimeout any
	if a.Job != nil {
		job = a.Job.render(org, apiBase, a)
	}
	if a.Paused {
		pausedBy = creator()
		pausedTimeout = a.PausedTimeoutInMinutes
	}
	if a.PausedNote != "" {
		pausedNote = a.PausedNote
	}
	meta := a.MetaData
	if meta == nil {
		meta = []string{}
	}
	o := object{
		{"id", a.ID},
		{"graphql_id", graphqlID("Agent", a.ID)},
		{"url", fmt.Sprintf("%s/v2/organizations/%s/agents/%s", apiBase, org, a.ID)},
		{"web_url", webURL},
		{"name", a.Name},
		{"connection_state", a.ConnectionState},
		{"hostname", a.Hostname},
		{"ip_address", a.IPAddress},
		{"user_agent", a.UserAgent},
		{"version", a.Version},
		{"creator", a.creator()},
		{"created_at", ts(a.CreatedAt)},
		{"job", job},
		{"last_job_finished_at", tsPtr(a.LastJobFinishedAt)},
		{"priority", a.Priority},
		{"meta_data", meta},
	}
	for _, f := range []field{{"os_id", a.OSID}, {"arch", a.Arch}, {"queue", queue}} {
		if f.value != "" {
			o = append(o, f)
		}
	}
	o = append(o,
		field{"connected_at", tsPtr(a.ConnectedAt)},
		field{"disconnected_at", tsPtr(a.DisconnectedAt)},
		field{"lost_at", tsPtr(a.LostAt)},
		field{"stopped_at", tsPtr(a.StoppedAt)},
	)
	if a.Paused { // absent otherwise, as in every published example
		o = append(o,
			field{"paused", a.Paused},
			field{"paused_at", tsPtr(a.PausedAt)},
			field{"paused_by", pausedBy},
			field{"paused_note", pausedNote},
			field{"paused_timeout_in_minutes", pausedTimeout},
		)
	}
	return o.merge(a.Extra)
}

var pipelines = []string{"api", "web-frontend", "infrastructure", "mobile-app", "data-pipeline"}
var stepNames = []string{":rspec: rspec", ":go: go test", ":docker: build", ":eslint: lint", ":rocket: deploy"}

// render fills the job's undocumented-by-us fields from a hash of its ID, so the
// same job always looks the same.
func (j *Job) render(org, apiBase string, a *Agent) object {
	h := fnv.New64a()
	h.Write([]byte(j.ID))
	sum := h.Sum64()
	pipeline := pipelines[sum%uint64(len(pipelines))]
	step := stepNames[(sum/7)%uint64(len(stepNames))]
	build := 1 + (sum/131)%5000
	buildURL := fmt.Sprintf("%s/v2/organizations/%s/pipelines/%s/builds/%d", apiBase, org, pipeline, build)
	jobURL := fmt.Sprintf("%s/jobs/%s", buildURL, j.ID)

	// Scheduled a little before it started; with no start yet, anchor on the agent.
	base := a.CreatedAt
	if a.ConnectedAt != nil {
		base = *a.ConnectedAt
	}
	if j.StartedAt != nil {
		base = *j.StartedAt
	}
	scheduled := base.Add(-time.Duration(1+(sum/17)%60) * time.Second)
	created := scheduled.Add(-time.Duration(100+(sum/19)%900) * time.Millisecond)

	rules := []string{}
	for _, m := range a.MetaData {
		if strings.HasPrefix(m, "queue=") {
			rules = append(rules, m)
			break
		}
	}
	if len(rules) == 0 {
		rules = append(rules, "queue=default")
	}
	return object{
		{"id", j.ID},
		{"graphql_id", graphqlID("Job", j.ID)},
		{"type", "script"},
		{"name", step},
		{"step_key", nil},
		{"agent_query_rules", rules},
		{"state", j.State},
		{"build_url", buildURL},
		{"web_url", fmt.Sprintf("https://buildkite.com/%s/%s/builds/%d#%s", org, pipeline, build, j.ID)},
		{"log_url", jobURL + "/log"},
		{"raw_log_url", jobURL + "/log.txt"},
		{"artifacts_url", jobURL + "/artifacts"},
		{"command", "make " + strings.Fields(step)[1]},
		{"soft_failed", false},
		{"exit_status", nil},
		{"artifact_paths", ""},
		{"agent", nil},
		{"created_at", ts(created)},
		{"scheduled_at", ts(scheduled)},
		{"runnable_at", ts(scheduled)},
		{"started_at", tsPtr(j.StartedAt)},
		{"finished_at", nil},
		{"retried", false},
		{"retried_in_job_id", nil},
		{"retries_count", nil},
		{"parallel_group_index", nil},
		{"parallel_group_total", nil},
	}
}

// uuidFrom derives a stable UUID-shaped string from s.
func uuidFrom(s string) string {
	h := fnv.New128a()
	h.Write([]byte(s))
	b := h.Sum(nil)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
