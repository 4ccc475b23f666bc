package agentmetrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// AgentCounts are the agents of a queue (or of the whole cluster).
type AgentCounts struct {
	Idle, Busy, Total int64
}

// JobCounts are the unfinished jobs of a queue (or of the whole cluster).
// Total is the API's own figure.
type JobCounts struct {
	Scheduled, Running, Waiting, Total int64
}

// Queue is one queue of the answer. A queue listed only under agents (or
// only under jobs) has zero counts for the other.
type Queue struct {
	Name   string
	Agents AgentCounts
	Jobs   JobCounts
}

// Metrics is the answer of GET /v3/metrics.
type Metrics struct {
	Organization string // organization.slug; never ""
	Cluster      string // cluster.name; "" for an unclustered token
	Agents       AgentCounts
	Jobs         JobCounts
	Queues       []Queue // sorted by name, distinct
	// PollDuration is the answer's Buildkite-Agent-Metrics-Poll-Duration:
	// poll no faster than this. 0 when the header was absent or invalid.
	PollDuration time.Duration
	Requests     int // HTTP requests sent for this answer
}

// QueueMetrics is the answer of GET /v3/metrics/queue?name=Q.
type QueueMetrics struct {
	Organization string
	Cluster      string
	Queue        string // the name asked for
	Agents       AgentCounts
	Jobs         JobCounts
	PollDuration time.Duration
	Requests     int // HTTP requests sent for this answer
}

// The wire format. Counts are pointers so that a null is told from a 0 (both
// mean 0 here, but a missing organization slug is an error).
type (
	wireAgents struct {
		Idle  *int64 `json:"idle"`
		Busy  *int64 `json:"busy"`
		Total *int64 `json:"total"`
	}
	wireJobs struct {
		Scheduled *int64 `json:"scheduled"`
		Running   *int64 `json:"running"`
		Waiting   *int64 `json:"waiting"`
		Total     *int64 `json:"total"`
	}
	wireNamed struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	}
	wireAllAgents struct {
		wireAgents
		Queues map[string]*wireAgents `json:"queues"`
	}
	wireAllJobs struct {
		wireJobs
		Queues map[string]*wireJobs `json:"queues"`
	}
	wireMetrics struct {
		Agents       *wireAllAgents `json:"agents"`
		Jobs         *wireAllJobs   `json:"jobs"`
		Organization *wireNamed     `json:"organization"`
		Cluster      *wireNamed     `json:"cluster"`
	}
	wireQueueMetrics struct {
		Agents       *wireAgents `json:"agents"`
		Jobs         *wireJobs   `json:"jobs"`
		Organization *wireNamed  `json:"organization"`
		Cluster      *wireNamed  `json:"cluster"`
	}
)

// maxQueues bounds the queues of one answer: each becomes series.
const maxQueues = 10000

var errNoOrganization = errors.New("no organization slug in the answer")

// DecodeMetrics parses a /v3/metrics body. Counts must be non-negative
// integers (null or missing count as 0); organization.slug must be set;
// cluster may be missing or null. Unknown fields are ignored. Errors wrap
// client.ErrMalformed.
func DecodeMetrics(b []byte) (*Metrics, error) {
	var w wireMetrics
	if err := unmarshal(b, &w); err != nil {
		return nil, err
	}
	org, cluster, err := names(w.Organization, w.Cluster)
	if err != nil {
		return nil, err
	}
	m := &Metrics{Organization: org, Cluster: cluster}
	byName := map[string]*Queue{}
	queue := func(name string) *Queue {
		q := byName[name]
		if q == nil {
			q = &Queue{Name: name}
			byName[name] = q
		}
		return q
	}
	if w.Agents != nil {
		if m.Agents, err = w.Agents.wireAgents.counts(); err != nil {
			return nil, err
		}
		for name, a := range w.Agents.Queues {
			c, err := a.counts()
			if err != nil {
				return nil, fmt.Errorf("%w (agents of queue %q)", err, name)
			}
			queue(name).Agents = c
		}
	}
	if w.Jobs != nil {
		if m.Jobs, err = w.Jobs.wireJobs.counts(); err != nil {
			return nil, err
		}
		for name, j := range w.Jobs.Queues {
			c, err := j.counts()
			if err != nil {
				return nil, fmt.Errorf("%w (jobs of queue %q)", err, name)
			}
			queue(name).Jobs = c
		}
	}
	if len(byName) > maxQueues {
		return nil, fmt.Errorf("%w: %d queues, more than %d", client.ErrMalformed, len(byName), maxQueues)
	}
	m.Queues = make([]Queue, 0, len(byName))
	for _, q := range byName {
		m.Queues = append(m.Queues, *q)
	}
	sort.Slice(m.Queues, func(i, j int) bool { return m.Queues[i].Name < m.Queues[j].Name })
	return m, nil
}

// DecodeQueueMetrics parses a /v3/metrics/queue body, by the rules of
// DecodeMetrics.
func DecodeQueueMetrics(b []byte) (*QueueMetrics, error) {
	var w wireQueueMetrics
	if err := unmarshal(b, &w); err != nil {
		return nil, err
	}
	org, cluster, err := names(w.Organization, w.Cluster)
	if err != nil {
		return nil, err
	}
	m := &QueueMetrics{Organization: org, Cluster: cluster}
	if m.Agents, err = w.Agents.counts(); err != nil {
		return nil, err
	}
	if m.Jobs, err = w.Jobs.counts(); err != nil {
		return nil, err
	}
	return m, nil
}

func unmarshal(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf("%w: the answer is not a JSON object", client.ErrMalformed)
	}
	if err := json.Unmarshal(b, v); err != nil {
		// json's messages quote at most a type name or an offset, never
		// the body itself.
		return fmt.Errorf("%w: %w", client.ErrMalformed, err)
	}
	return nil
}

func names(org, cluster *wireNamed) (string, string, error) {
	if org == nil || org.Slug == "" {
		return "", "", fmt.Errorf("%w: %w", client.ErrMalformed, errNoOrganization)
	}
	c := ""
	if cluster != nil {
		c = cluster.Name
	}
	return org.Slug, c, nil
}

func count(p *int64, what string) (int64, error) {
	switch {
	case p == nil:
		return 0, nil
	case *p < 0:
		return 0, fmt.Errorf("%w: negative %s count %d", client.ErrMalformed, what, *p)
	}
	return *p, nil
}

func (w *wireAgents) counts() (AgentCounts, error) {
	var c AgentCounts
	if w == nil {
		return c, nil
	}
	var err error
	for _, f := range []struct {
		p    *int64
		dst  *int64
		name string
	}{{w.Idle, &c.Idle, "idle"}, {w.Busy, &c.Busy, "busy"}, {w.Total, &c.Total, "total"}} {
		if *f.dst, err = count(f.p, f.name+" agents"); err != nil {
			return AgentCounts{}, err
		}
	}
	return c, nil
}

func (w *wireJobs) counts() (JobCounts, error) {
	var c JobCounts
	if w == nil {
		return c, nil
	}
	var err error
	for _, f := range []struct {
		p    *int64
		dst  *int64
		name string
	}{{w.Scheduled, &c.Scheduled, "scheduled"}, {w.Running, &c.Running, "running"}, {w.Waiting, &c.Waiting, "waiting"}, {w.Total, &c.Total, "total"}} {
		if *f.dst, err = count(f.p, f.name+" jobs"); err != nil {
			return JobCounts{}, err
		}
	}
	return c, nil
}
