package collector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/buildkite-exporter/buildkite_exporter/client/agentmetrics"
)

// AgentMetricsAPI is what the jobs collector needs of Buildkite's Agent
// Metrics API for one agent token. *agentmetrics.Client implements it.
type AgentMetricsAPI interface {
	Metrics(ctx context.Context) (*agentmetrics.Metrics, error)
}

// JobsSource is one agent token (one cluster).
type JobsSource struct {
	// Name identifies the token in logs, e.g. its file's path; never the
	// token itself.
	Name string
	API  AgentMetricsAPI
}

// JobsConfig holds the jobs collector's settings.
type JobsConfig struct {
	Queues         []string      // always zero-filled (--collector.queue)
	QueueRetention time.Duration // how long a queue seen once stays known
	// MinInterval serves answers younger than this from memory, on top of
	// the Poll-Duration Buildkite asks for (--collector.min-interval).
	MinInterval time.Duration
	Timeout     time.Duration // bound on every poll, whatever the scrapes' deadlines
	Now         func() time.Time
	Logger      log.Logger
}

// JobsExporter exposes the job backlog per queue from the Agent Metrics API,
// one poll per agent token. Between the polls Buildkite allows
// (Buildkite-Agent-Metrics-Poll-Duration) it serves the latest answer.
type JobsExporter struct {
	cfg     JobsConfig
	sources []*jobsMemory
	flight  flightGroup
	up      *prometheus.Desc
	jobs    *prometheus.Desc
}

// JobsSnapshot is the immutable result of one poll of one agent token.
type JobsSnapshot struct {
	Source       string
	Organization string // of this answer, or the last good one on failure
	Cluster      string
	Start, End   time.Time
	// PollDuration is Buildkite's minimum interval from a good answer,
	// at most MaxPollDuration; 0 when not given and after a failed poll.
	PollDuration time.Duration
	Err          error

	// Queues is set only when Err is nil: every known queue, sorted,
	// zero-filled.
	Queues []QueueJobs
}

// OK reports whether the poll succeeded.
func (s *JobsSnapshot) OK() bool { return s.Err == nil }

// QueueJobs are the unfinished jobs of one queue.
type QueueJobs struct {
	Queue                       string
	Scheduled, Running, Waiting int64
}

// jobsMemory is what outlives a scrape for one agent token.
type jobsMemory struct {
	JobsSource
	key string // for the flight group

	mu         sync.Mutex
	queues     map[string]time.Time // queue -> last seen in a good answer
	latest     *JobsSnapshot
	freshUntil time.Time
	errClass   string
	org        string // of the last good answer
	cluster    string
}

// MaxPollDuration caps how long a good answer's
// Buildkite-Agent-Metrics-Poll-Duration keeps it served from memory, so a
// garbled header cannot freeze the backlog series for long. A failed
// answer's poll duration is not honoured at all: the next scrape polls
// again (within JobsConfig.MinInterval, the failure is served).
const MaxPollDuration = 5 * time.Minute

// jobStates are the values of the state label, in exposition order.
var jobStates = []string{"scheduled", "running", "waiting"}

// NewJobsExporter returns a collector for the given agent tokens.
func NewJobsExporter(sources []JobsSource, cfg JobsConfig) (*JobsExporter, error) {
	if len(sources) == 0 {
		return nil, errors.New("collector: no agent token")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = log.NewNopLogger()
	}
	e := &JobsExporter{
		cfg: cfg,
		up: prometheus.NewDesc(nameAgentMetricsUp,
			"1 when the latest poll of the Agent Metrics API for this agent token (cluster) succeeded, else 0. "+
				"Between the polls Buildkite allows (Buildkite-Agent-Metrics-Poll-Duration) the latest answer is served.",
			[]string{"organization", "buildkite_cluster"}, nil),
		jobs: prometheus.NewDesc(nameQueueJobs,
			"Unfinished jobs per queue from the Agent Metrics API, by state (scheduled, running, waiting); known queues are zero-filled. "+
				"Between the polls Buildkite allows (Buildkite-Agent-Metrics-Poll-Duration) the latest answer is served, so values may be that old.",
			[]string{"organization", "buildkite_cluster", "queue", "state"}, nil),
	}
	for i, s := range sources {
		if s.API == nil {
			return nil, fmt.Errorf("collector: agent token %d has no API", i)
		}
		e.sources = append(e.sources, &jobsMemory{JobsSource: s, key: fmt.Sprint(i), queues: map[string]time.Time{}})
	}
	return e, nil
}

// Describe sends the two descriptors.
func (e *JobsExporter) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.up
	ch <- e.jobs
}

// Collect polls (or serves from memory) every agent token within
// JobsConfig.Timeout, the bound on every poll.
func (e *JobsExporter) Collect(ch chan<- prometheus.Metric) {
	e.emit(e.Collection(context.Background()), ch)
}

// Bind returns a collector that waits for polls until ctx's deadline, for
// a scrape that said how long it waits. The poll itself is bounded by
// JobsConfig.Timeout only.
func (e *JobsExporter) Bind(ctx context.Context) prometheus.Collector {
	return boundJobs{e: e, ctx: ctx}
}

type boundJobs struct {
	e   *JobsExporter
	ctx context.Context
}

func (b boundJobs) Describe(ch chan<- *prometheus.Desc) { b.e.Describe(ch) }
func (b boundJobs) Collect(ch chan<- prometheus.Metric) { b.e.emit(b.e.Collection(b.ctx), ch) }

// Collection returns a snapshot per agent token, polled concurrently or
// served from memory while Buildkite's poll duration (or MinInterval) has
// not passed. Concurrent callers share one poll per token.
func (e *JobsExporter) Collection(ctx context.Context) []*JobsSnapshot {
	return concurrently(e.sources, func(m *jobsMemory) *JobsSnapshot { return e.snapshot(ctx, m) })
}

// Latest returns the latest snapshot of every agent token without polling;
// nil entries for tokens never polled.
func (e *JobsExporter) Latest() []*JobsSnapshot {
	out := make([]*JobsSnapshot, len(e.sources))
	for i, m := range e.sources {
		m.mu.Lock()
		out[i] = m.latest
		m.mu.Unlock()
	}
	return out
}

func (m *jobsMemory) fresh(now time.Time) *JobsSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.latest != nil && now.Before(m.freshUntil) {
		return m.latest
	}
	return nil
}

func (e *JobsExporter) snapshot(ctx context.Context, m *jobsMemory) *JobsSnapshot {
	if s := m.fresh(e.cfg.Now()); s != nil {
		return s
	}
	s, ok := shared(ctx, &e.flight, m.key, e.cfg.Timeout, e.cfg.Logger, []any{"agent_token", m.Name}, func(pctx context.Context) *JobsSnapshot {
		if s := m.fresh(e.cfg.Now()); s != nil {
			return s
		}
		return e.poll(pctx, m)
	})
	if !ok {
		now := e.cfg.Now()
		m.mu.Lock()
		org, cluster := m.org, m.cluster
		m.mu.Unlock()
		return &JobsSnapshot{Source: m.Name, Organization: org, Cluster: cluster, Start: now, End: now,
			Err: fmt.Errorf("waiting for a poll in progress: %w", ctx.Err())}
	}
	return s
}

// poll asks the Agent Metrics API once and updates the token's memory.
func (e *JobsExporter) poll(ctx context.Context, m *jobsMemory) *JobsSnapshot {
	s := &JobsSnapshot{Source: m.Name, Start: e.cfg.Now()}
	res, err := m.API.Metrics(ctx)
	s.End = e.cfg.Now()

	m.mu.Lock()
	if err != nil {
		s.Err = err
		s.Organization, s.Cluster = m.org, m.cluster
	} else {
		s.PollDuration = min(max(res.PollDuration, 0), MaxPollDuration)
		s.Organization, s.Cluster = labelValue(res.Organization), labelValue(res.Cluster)
		s.Queues = e.queueJobs(m, res, s)
	}
	m.latest = s
	m.freshUntil = s.End.Add(max(s.PollDuration, e.cfg.MinInterval))
	class := ""
	if s.Err != nil {
		class = errorClass(s.Err)
	}
	changed, previous := class != m.errClass, m.errClass
	m.errClass = class
	m.mu.Unlock()

	switch {
	case s.Err != nil && changed:
		level.Error(e.cfg.Logger).Log("msg", "Agent Metrics API poll failed; buildkite_agent_metrics_up is 0 until it recovers",
			"agent_token", m.Name, "organization", s.Organization, "buildkite_cluster", s.Cluster, "err", s.Err)
	case s.Err == nil && changed && previous != "":
		level.Info(e.cfg.Logger).Log("msg", "Agent Metrics API poll recovered", "agent_token", m.Name,
			"organization", s.Organization, "buildkite_cluster", s.Cluster)
	}
	level.Debug(e.cfg.Logger).Log("msg", "Agent Metrics API poll done", "agent_token", m.Name, "ok", s.OK(),
		"organization", s.Organization, "buildkite_cluster", s.Cluster, "queues", len(s.Queues),
		"poll_duration", s.PollDuration, "duration", s.End.Sub(s.Start), "err", s.Err)
	return s
}

// queueJobs records a good answer's queues in m (its lock held) and
// returns every known queue's jobs, sorted, zero-filled.
func (e *JobsExporter) queueJobs(m *jobsMemory, res *agentmetrics.Metrics, s *JobsSnapshot) []QueueJobs {
	if m.org != "" && (m.org != s.Organization || m.cluster != s.Cluster) {
		clear(m.queues) // the token now belongs elsewhere: its queues too
	}
	m.org, m.cluster = s.Organization, s.Cluster
	counts := map[string]QueueJobs{}
	for _, q := range res.Queues {
		name := labelValue(q.Name)
		m.queues[name] = s.End
		c := counts[name]
		c.Queue = name
		c.Scheduled += q.Jobs.Scheduled
		c.Running += q.Jobs.Running
		c.Waiting += q.Jobs.Waiting
		counts[name] = c
	}
	configured := configuredQueuesOf(e.cfg.Queues, s.Cluster)
	for q, seen := range m.queues {
		if s.End.Sub(seen) > e.cfg.QueueRetention && !slices.Contains(configured, q) {
			delete(m.queues, q)
		}
	}
	for _, q := range configured {
		if _, ok := counts[q]; !ok {
			counts[q] = QueueJobs{Queue: q}
		}
	}
	for q := range m.queues {
		if _, ok := counts[q]; !ok {
			counts[q] = QueueJobs{Queue: q}
		}
	}
	queues := make([]QueueJobs, 0, len(counts))
	for _, c := range counts {
		queues = append(queues, c)
	}
	sort.Slice(queues, func(i, j int) bool { return queues[i].Queue < queues[j].Queue })
	return queues
}

// emit writes the snapshots as metrics. Two tokens of one cluster (a
// configuration slip) must not make duplicate series: up is 0 if either
// failed, and the jobs come from the first that succeeded.
func (e *JobsExporter) emit(snaps []*JobsSnapshot, ch chan<- prometheus.Metric) {
	type key struct{ org, cluster string }
	var order []key
	up := map[key]bool{}
	jobs := map[key]*JobsSnapshot{}
	for _, s := range snaps {
		k := key{s.Organization, s.Cluster}
		if ok, seen := up[k]; seen {
			up[k] = ok && s.OK()
		} else {
			order = append(order, k)
			up[k] = s.OK()
		}
		if s.OK() && jobs[k] == nil {
			jobs[k] = s
		}
	}
	for _, k := range order {
		ch <- prometheus.MustNewConstMetric(e.up, prometheus.GaugeValue, boolValue(up[k]), k.org, k.cluster)
		if !up[k] {
			continue // no partial numbers
		}
		for _, q := range jobs[k].Queues {
			for i, v := range [...]int64{q.Scheduled, q.Running, q.Waiting} {
				ch <- prometheus.MustNewConstMetric(e.jobs, prometheus.GaugeValue, float64(v), k.org, k.cluster, q.Queue, jobStates[i])
			}
		}
	}
}
