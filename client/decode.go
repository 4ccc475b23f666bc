package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// maxMetaData bounds the meta_data entries kept of one agent: real agents
// have tens, and each entry costs memory while a page is read. An agent
// with more has its meta_data treated as absent (a field error).
const maxMetaData = 10000

// wireAgent is the part of Buildkite's agent object the exporter reads.
// Every member is kept raw and parsed on its own, so that one of an
// unexpected type or format counts as absent (a field error) without
// failing the agent. Only id and connection_state are required.
type wireAgent struct {
	ID                json.RawMessage `json:"id"`
	ConnectionState   json.RawMessage `json:"connection_state"`
	Name              json.RawMessage `json:"name"`
	Hostname          json.RawMessage `json:"hostname"`
	IPAddress         json.RawMessage `json:"ip_address"`
	UserAgent         json.RawMessage `json:"user_agent"`
	Version           json.RawMessage `json:"version"`
	OSID              json.RawMessage `json:"os_id"`
	Arch              json.RawMessage `json:"arch"`
	Queue             json.RawMessage `json:"queue"`
	MetaData          json.RawMessage `json:"meta_data"`
	Priority          json.RawMessage `json:"priority"`
	CreatedAt         json.RawMessage `json:"created_at"`
	ConnectedAt       json.RawMessage `json:"connected_at"`
	DisconnectedAt    json.RawMessage `json:"disconnected_at"`
	LostAt            json.RawMessage `json:"lost_at"`
	StoppedAt         json.RawMessage `json:"stopped_at"`
	LastJobFinishedAt json.RawMessage `json:"last_job_finished_at"`
	Paused            json.RawMessage `json:"paused"`
	PausedAt          json.RawMessage `json:"paused_at"`
	PausedNote        json.RawMessage `json:"paused_note"`
	Job               json.RawMessage `json:"job"`
	WebURL            json.RawMessage `json:"web_url"`
}

type wireJob struct {
	ID        json.RawMessage `json:"id"`
	State     json.RawMessage `json:"state"`
	StartedAt json.RawMessage `json:"started_at"`
}

// DecodeAgents decodes a page of the List agents answer: a JSON array of
// agent objects. It returns the agents in order and, by JSON member name
// ("priority", "job.started_at", ...), how many members it treated as
// absent for an unexpected type or format (nil when none).
//
// null, a missing member and "" are absent, never an error. Strings are
// valid UTF-8 (invalid bytes become U+FFFD, as encoding/json does),
// timestamps are RFC 3339 in UTC, empty meta_data entries are dropped.
// A body that is not JSON or not an array, or an agent that is not an
// object or whose id or connection_state is missing or not a string,
// fails the page with an error wrapping ErrMalformed.
func DecodeAgents(body []byte) ([]Agent, map[string]int, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, malformed(err)
	}
	if tok != json.Delim('[') {
		return nil, nil, fmt.Errorf("%w: expected a JSON array of agents, got %s", ErrMalformed, kindOf(tok))
	}
	var (
		agents []Agent
		fe     fieldErrors
	)
	for dec.More() {
		var w wireAgent
		if err := dec.Decode(&w); err != nil {
			return nil, nil, fmt.Errorf("%w: agent %d: %w", ErrMalformed, len(agents), jsonError(err))
		}
		a, err := w.agent(&fe)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: agent %d: %w", ErrMalformed, len(agents), err)
		}
		agents = append(agents, a)
	}
	if _, err := dec.Token(); err != nil { // the closing bracket
		return nil, nil, malformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("%w: trailing data after the JSON value", ErrMalformed)
	}
	return agents, fe, nil
}

// decodeAgent decodes the Get agent answer: one agent object.
func decodeAgent(body []byte) (Agent, map[string]int, error) {
	var w wireAgent
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return Agent{}, nil, fmt.Errorf("%w: expected an agent object", ErrMalformed)
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return Agent{}, nil, malformed(err)
	}
	var fe fieldErrors
	a, err := w.agent(&fe)
	if err != nil {
		return Agent{}, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return a, fe, nil
}

func malformed(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: empty or truncated body", ErrMalformed)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, jsonError(err))
}

// jsonError keeps encoding/json's message, which quotes at most a type
// name, a member name or an offset, never a value.
func jsonError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated JSON")
	}
	return err
}

func kindOf(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an object"
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}

var (
	errNoID    = errors.New("agent without id (or not a string)")
	errNoState = errors.New("agent without connection_state (or not a string)")
)

// fieldErrors counts members treated as absent, by JSON name.
type fieldErrors map[string]int

func (fe *fieldErrors) add(name string) {
	if *fe == nil {
		*fe = fieldErrors{}
	}
	(*fe)[name]++
}

// agent builds the Agent; only a missing or non-string id or
// connection_state is an error.
func (w *wireAgent) agent(fe *fieldErrors) (Agent, error) {
	var a Agent
	var ok bool
	if a.ID, ok = jsonString(w.ID); !ok || a.ID == "" {
		return Agent{}, errNoID
	}
	if a.ConnectionState, ok = jsonString(w.ConnectionState); !ok {
		return Agent{}, errNoState
	}
	for _, s := range [...]struct {
		raw  json.RawMessage
		dst  *string
		name string
	}{
		{w.Name, &a.Name, "name"}, {w.Hostname, &a.Hostname, "hostname"}, {w.IPAddress, &a.IPAddress, "ip_address"},
		{w.UserAgent, &a.UserAgent, "user_agent"}, {w.Version, &a.Version, "version"}, {w.OSID, &a.OSID, "os_id"},
		{w.Arch, &a.Arch, "arch"}, {w.Queue, &a.Queue, "queue"}, {w.PausedNote, &a.PausedNote, "paused_note"},
	} {
		*s.dst = optString(s.raw, s.name, fe)
	}
	for _, t := range [...]struct {
		raw  json.RawMessage
		dst  *time.Time
		name string
	}{
		{w.CreatedAt, &a.CreatedAt, "created_at"}, {w.ConnectedAt, &a.ConnectedAt, "connected_at"},
		{w.DisconnectedAt, &a.DisconnectedAt, "disconnected_at"}, {w.LostAt, &a.LostAt, "lost_at"},
		{w.StoppedAt, &a.StoppedAt, "stopped_at"}, {w.LastJobFinishedAt, &a.LastJobFinishedAt, "last_job_finished_at"},
		{w.PausedAt, &a.PausedAt, "paused_at"},
	} {
		*t.dst = optTime(t.raw, t.name, fe)
	}
	a.Paused = optBool(w.Paused, "paused", fe)
	a.Priority = optInt(w.Priority, "priority", fe)
	a.MetaData = optMetaData(w.MetaData, fe)
	a.Job = optJob(w.Job, fe)
	a.ClusterID, a.QueueID = optWebURL(w.WebURL, fe)
	return a, nil
}

// absent reports whether a member is missing or null.
func absent(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

// jsonString reads a JSON string; false for anything else (null included).
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if plainString(raw) {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// plainString reports whether a JSON string has no escapes and only
// printable ASCII, so that its bytes between the quotes are its value.
func plainString(raw json.RawMessage) bool {
	for _, c := range raw[1 : len(raw)-1] {
		if c < ' ' || c == '\\' || c == '"' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func optString(raw json.RawMessage, name string, fe *fieldErrors) string {
	if absent(raw) {
		return ""
	}
	s, ok := jsonString(raw)
	if !ok {
		fe.add(name)
	}
	return s
}

// optTime reads an RFC 3339 timestamp; "" is absent.
func optTime(raw json.RawMessage, name string, fe *fieldErrors) time.Time {
	s := optString(raw, name, fe)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		fe.add(name)
		return time.Time{}
	}
	return t.UTC()
}

func optBool(raw json.RawMessage, name string, fe *fieldErrors) bool {
	switch string(raw) {
	case "", "null", "false":
		return false
	case "true":
		return true
	}
	fe.add(name)
	return false
}

// optInt reads an integer that fits an int; 3.0 and 1e2 are not integers.
func optInt(raw json.RawMessage, name string, fe *fieldErrors) *int {
	if absent(raw) {
		return nil
	}
	var n int
	if json.Unmarshal(raw, &n) != nil {
		fe.add(name)
		return nil
	}
	return &n
}

// optMetaData reads an array of strings, dropping null and "" entries;
// more than maxMetaData entries is a field error, found without decoding
// the rest.
func optMetaData(raw json.RawMessage, fe *fieldErrors) []string {
	if absent(raw) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		fe.add("meta_data")
		return nil
	}
	var out []string
	for n := 0; dec.More(); n++ {
		var s *string
		if n == maxMetaData || dec.Decode(&s) != nil {
			fe.add("meta_data")
			return nil
		}
		if s != nil && *s != "" {
			out = append(out, *s)
		}
	}
	return out
}

func optJob(raw json.RawMessage, fe *fieldErrors) *Job {
	if absent(raw) {
		return nil
	}
	var w wireJob
	if raw[0] != '{' || json.Unmarshal(raw, &w) != nil {
		fe.add("job")
		return nil
	}
	return &Job{
		ID:        optString(w.ID, "job.id", fe),
		State:     optString(w.State, "job.state", fe),
		StartedAt: optTime(w.StartedAt, "job.started_at", fe),
	}
}

// optWebURL reads the cluster and queue UUIDs from an agent's web_url:
// https://buildkite.com/organizations/{org}/clusters/{cluster}/queues/{queue}/agents/{id}
// for a clustered agent, .../organizations/{org}/agents/{id} (no cluster)
// for another. Any other shape is a field error.
func optWebURL(raw json.RawMessage, fe *fieldErrors) (cluster, queue string) {
	s := optString(raw, "web_url", fe)
	if s == "" {
		return "", ""
	}
	u, err := url.Parse(s)
	if err == nil && u.IsAbs() {
		seg := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		switch {
		case len(seg) == 4 && seg[0] == "organizations" && seg[2] == "agents" && allSet(seg):
			return "", ""
		case len(seg) == 8 && seg[0] == "organizations" && seg[2] == "clusters" && seg[4] == "queues" && seg[6] == "agents" && allSet(seg):
			return seg[3], seg[5]
		}
	}
	fe.add("web_url")
	return "", ""
}

func allSet(seg []string) bool {
	for _, s := range seg {
		if s == "" {
			return false
		}
	}
	return true
}
