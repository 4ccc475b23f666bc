// Package client is a small client for Buildkite's REST Agents API.
//
// It knows HTTP and Buildkite and nothing of Prometheus: it reports what it
// did (requests, status codes, rate-limit headers) through an Observer and
// RequestStats, and the caller turns that into metrics.
package client

import (
	"context"
	"sync/atomic"
	"time"
)

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
}

// RateLimit is what the RateLimit-* headers of one response said.
type RateLimit struct {
	Limit      int
	Remaining  int // may be negative
	Reset      int // seconds until the window resets, as sent
	ObservedAt time.Time
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

// RequestStats counts the HTTP requests made on behalf of one caller, such as
// one collection. Attach it to a context with WithRequestStats, in the
// spirit of net/http/httptrace.
type RequestStats struct {
	requests atomic.Int64
}

// Requests returns how many HTTP requests were made so far.
func (s *RequestStats) Requests() int64 { return s.requests.Load() }

func (s *RequestStats) add() {
	if s != nil {
		s.requests.Add(1)
	}
}

type requestStatsKey struct{}

// WithRequestStats returns a context whose requests are counted in s.
func WithRequestStats(ctx context.Context, s *RequestStats) context.Context {
	return context.WithValue(ctx, requestStatsKey{}, s)
}

func requestStatsFrom(ctx context.Context) *RequestStats {
	s, _ := ctx.Value(requestStatsKey{}).(*RequestStats)
	return s
}
