// Package client is a small client for Buildkite's REST Agents API.
//
// It knows HTTP and Buildkite and nothing of Prometheus: it reports what it
// did (requests, status codes, rate-limit headers) through an Observer and
// in its results, and the caller turns that into metrics.
package client

import "time"

// Agent is the part of Buildkite's agent object that an observer of the
// fleet needs. Fields the API omitted or sent as null are zero: "" for
// strings, the zero time.Time for timestamps, nil for Job and Priority.
type Agent struct {
	ID              string
	Name            string
	ConnectionState string // connected, stopping, disconnected, stopped, lost, never_connected, or anything else the API sends
	Hostname        string
	IPAddress       string
	UserAgent       string
	Version         string
	OSID            string // os_id
	Arch            string
	Queue           string // the queue key; "" when not set
	MetaData        []string

	Priority *int // nil when null

	CreatedAt         time.Time
	ConnectedAt       time.Time
	DisconnectedAt    time.Time
	LostAt            time.Time
	StoppedAt         time.Time
	LastJobFinishedAt time.Time

	Paused     bool
	PausedAt   time.Time
	PausedNote string

	Job *Job // nil when the agent runs no job

	// ClusterID and QueueID are the UUIDs of the agent's cluster and
	// cluster queue, read from web_url (.../clusters/{id}/queues/{id}/...);
	// "" for an unclustered agent.
	ClusterID string
	QueueID   string
}

// Job is the part of an agent's current job that the exporter uses.
type Job struct {
	ID        string
	State     string
	StartedAt time.Time
}

// ListOptions are the documented filters of List agents.
type ListOptions struct {
	Name           string
	Hostname       string
	Version        string
	ClusterQueueID string
}

// AgentList is one complete listing of an organization's agents.
type AgentList struct {
	Agents     []Agent // deduplicated by ID, in the order first seen
	Pages      int     // pages fetched
	Duplicates int     // agents seen again on a later page (pages shift while read)
	Requests   int     // HTTP requests sent, retries included
	// FieldErrors counts, by JSON member name ("priority",
	// "job.started_at", ...), the members of listed agents that had an
	// unexpected type or format and were treated as absent. nil when none.
	FieldErrors map[string]int
}

// RateLimit is what the rate-limit headers of one response said about one
// budget (RateLimit-* for an organization, RateLimit-User-* for the token's
// user).
type RateLimit struct {
	Limit      int
	Remaining  int // may be negative
	Reset      int // seconds until the window resets, as sent
	ObservedAt time.Time
}

// ResetAt is when the window resets: ObservedAt plus Reset seconds.
func (r RateLimit) ResetAt() time.Time { return r.ObservedAt.Add(time.Duration(r.Reset) * time.Second) }

// RateLimits are the two REST budgets that apply to requests for one
// organization, each from the latest response that carried its headers.
type RateLimits struct {
	Rest        RateLimit // the organization's (scope rest)
	RestUser    RateLimit // the token user's, shared by every organization of the Client (scope rest_user)
	HasRest     bool      // false until a response carried RateLimit-*
	HasRestUser bool      // false until a response carried RateLimit-User-*
}

// Observer hears of every HTTP request the client makes. Code is the HTTP
// status, or 0 when no response arrived (transport error, deadline).
type Observer interface {
	ObserveRequest(org string, code int)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(org string, code int)

// ObserveRequest calls f.
func (f ObserverFunc) ObserveRequest(org string, code int) { f(org, code) }
