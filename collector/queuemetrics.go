package collector

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/buildkite-exporter/buildkite_exporter/client/graphql"
)

// DefaultQueueMetricsInterval is how often queue metrics are polled.
const DefaultQueueMetricsInterval = time.Minute

// QueueMetricsAPI is what the queue metrics collector needs of Buildkite's
// GraphQL API. *graphql.Client implements it.
type QueueMetricsAPI interface {
	QueueMetrics(ctx context.Context, org string) (*graphql.Result, error)
	RateLimits(org string) graphql.RateLimits
}

// QueueMetricsConfig holds the queue metrics collector's settings.
type QueueMetricsConfig struct {
	Organizations []string
	// Interval between polls of an organization; in between, the latest
	// result is served (--collector.queue-metrics-interval, default 1m).
	Interval time.Duration
	// Timeout bounds a poll; a scrape with an earlier deadline waits only
	// until then (--buildkite.timeout, default 30s).
	Timeout time.Duration
	Now     func() time.Time
	Logger  log.Logger
}

// QueueMetricsExporter exposes the wait times and finished jobs of every
// cluster queue from Buildkite's advanced queue metrics, polled at most
// every Interval per organization. Concurrent scrapes share a poll.
type QueueMetricsExporter struct {
	cfg    QueueMetricsConfig
	api    QueueMetricsAPI
	orgs   []*queueMetricsMemory
	flight flightGroup

	up, waitTime, finished, timestamp *prometheus.Desc
	rateLimits                        map[string]rateLimitDescs // by scope
}

// QueueMetricsSnapshot is the immutable result of one poll of one
// organization.
type QueueMetricsSnapshot struct {
	Organization string
	Start, End   time.Time
	Requests     int // HTTP requests the poll sent
	Err          error
	// Queues is set only when Err is nil: every queue whose metrics are not
	// null, by cluster name then queue key.
	Queues     []QueueWaitTimes
	RateLimits graphql.RateLimits // after the poll
}

// OK reports whether the poll succeeded.
func (s *QueueMetricsSnapshot) OK() bool { return s.Err == nil }

// QueueWaitTimes is the latest bucket of one cluster queue.
type QueueWaitTimes struct {
	Cluster, Queue string // label values: the cluster's name, the queue's key
	graphql.Metrics
}

type queueMetricsMemory struct {
	org string

	mu         sync.Mutex
	latest     *QueueMetricsSnapshot
	freshUntil time.Time
	errClass   string
}

// waitStats and jobResults are the values of the stat and result labels.
var (
	waitStats  = []string{"min", "p50", "p95", "max"}
	jobResults = []string{"passed", "failed"}
)

// NewQueueMetricsExporter returns a collector of the organizations' queue
// metrics.
func NewQueueMetricsExporter(api QueueMetricsAPI, cfg QueueMetricsConfig) (*QueueMetricsExporter, error) {
	if api == nil {
		return nil, errors.New("collector: no GraphQL API")
	}
	if len(cfg.Organizations) == 0 {
		return nil, errors.New("collector: no organization for queue metrics")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultQueueMetricsInterval
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
	queue := []string{"organization", "buildkite_cluster", "queue"}
	e := &QueueMetricsExporter{
		cfg: cfg,
		api: api,
		up: prometheus.NewDesc(nameQueueMetricsUp,
			"1 when the latest poll of Buildkite's GraphQL API for queue metrics succeeded, else 0.", []string{"organization"}, nil),
		waitTime: prometheus.NewDesc(nameQueueWaitTime,
			"Wait time of the jobs of the latest bucket of Buildkite's advanced queue metrics, by stat (min, p50, p95, max).",
			append(queue, "stat"), nil),
		finished: prometheus.NewDesc(nameQueueFinishedJobs,
			"Jobs that finished in the latest bucket of Buildkite's advanced queue metrics, by result (passed, failed).",
			append(queue, "result"), nil),
		timestamp: prometheus.NewDesc(nameQueueMetricsTime,
			"Start of the latest bucket of Buildkite's advanced queue metrics.", queue, nil),
		rateLimits: map[string]rateLimitDescs{
			graphql.ScopeGraphQL:     newRateLimitDescs(graphql.ScopeGraphQL),
			graphql.ScopeGraphQLUser: newRateLimitDescs(graphql.ScopeGraphQLUser),
		},
	}
	for _, org := range cfg.Organizations {
		e.orgs = append(e.orgs, &queueMetricsMemory{org: org})
	}
	return e, nil
}

// Describe sends every descriptor.
func (e *QueueMetricsExporter) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.up
	ch <- e.waitTime
	ch <- e.finished
	ch <- e.timestamp
	for _, scope := range []string{graphql.ScopeGraphQL, graphql.ScopeGraphQLUser} {
		e.rateLimits[scope].describe(ch)
	}
}

// Collect polls (or serves from memory) every organization, waiting at
// most QueueMetricsConfig.Timeout.
func (e *QueueMetricsExporter) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	e.emit(e.Collection(ctx), ch)
}

// Bind returns a collector whose scrape waits for polls at most until
// ctx's deadline.
func (e *QueueMetricsExporter) Bind(ctx context.Context) prometheus.Collector {
	return boundQueueMetrics{e: e, ctx: ctx}
}

type boundQueueMetrics struct {
	e   *QueueMetricsExporter
	ctx context.Context
}

func (b boundQueueMetrics) Describe(ch chan<- *prometheus.Desc) { b.e.Describe(ch) }
func (b boundQueueMetrics) Collect(ch chan<- prometheus.Metric) { b.e.emit(b.e.Collection(b.ctx), ch) }

// Collection returns a snapshot per organization, polled concurrently or
// served from memory while the latest is younger than Interval.
// Concurrent callers share one poll per organization.
func (e *QueueMetricsExporter) Collection(ctx context.Context) []*QueueMetricsSnapshot {
	return concurrently(e.orgs, func(m *queueMetricsMemory) *QueueMetricsSnapshot { return e.snapshot(ctx, m) })
}

// Latest returns the latest snapshot of every organization without
// polling; nil entries for organizations never polled.
func (e *QueueMetricsExporter) Latest() []*QueueMetricsSnapshot {
	out := make([]*QueueMetricsSnapshot, len(e.orgs))
	for i, m := range e.orgs {
		m.mu.Lock()
		out[i] = m.latest
		m.mu.Unlock()
	}
	return out
}

func (m *queueMetricsMemory) fresh(now time.Time) *QueueMetricsSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.latest != nil && now.Before(m.freshUntil) {
		return m.latest
	}
	return nil
}

// snapshot serves org's latest result while fresh, or polls. The poll
// belongs to the exporter, not to the scrape that started it: it is bounded
// by Timeout alone, and every scrape waits for it at most until its own
// deadline (then it gets up 0 at once, and a later scrape the poll's result).
func (e *QueueMetricsExporter) snapshot(ctx context.Context, m *queueMetricsMemory) *QueueMetricsSnapshot {
	if s := m.fresh(e.cfg.Now()); s != nil {
		return s
	}
	s, ok := shared(ctx, &e.flight, m.org, e.cfg.Timeout, e.cfg.Logger, []any{"organization", m.org}, func(pctx context.Context) *QueueMetricsSnapshot {
		if s := m.fresh(e.cfg.Now()); s != nil {
			return s
		}
		return e.poll(pctx, m)
	})
	if !ok {
		now := e.cfg.Now()
		return &QueueMetricsSnapshot{Organization: labelValue(m.org), Start: now, End: now,
			Err: fmt.Errorf("waiting for a queue metrics poll in progress: %w", ctx.Err()), RateLimits: e.api.RateLimits(m.org)}
	}
	return s
}

// poll asks the GraphQL API once and updates the organization's memory.
func (e *QueueMetricsExporter) poll(ctx context.Context, m *queueMetricsMemory) *QueueMetricsSnapshot {
	s := &QueueMetricsSnapshot{Organization: labelValue(m.org), Start: e.cfg.Now()}
	res, err := e.api.QueueMetrics(ctx, m.org)
	s.End = e.cfg.Now()
	s.RateLimits = e.api.RateLimits(m.org)
	if res != nil {
		s.Requests = res.Requests
	}
	if s.Err = err; err == nil {
		s.Queues = queueWaitTimes(res)
	}

	m.mu.Lock()
	m.latest = s
	m.freshUntil = s.End.Add(e.cfg.Interval)
	class := ""
	if err != nil {
		class = errorClass(err)
		if errors.Is(err, graphql.ErrQuery) {
			class = graphql.ErrQuery.Error()
		}
	}
	changed, previous := class != m.errClass, m.errClass
	m.errClass = class
	m.mu.Unlock()

	switch {
	case err != nil && changed:
		level.Error(e.cfg.Logger).Log("msg", "GraphQL queue metrics poll failed; buildkite_queue_metrics_up is 0 until it recovers",
			"organization", s.Organization, "err", err)
	case err == nil && changed && previous != "":
		level.Info(e.cfg.Logger).Log("msg", "GraphQL queue metrics poll recovered", "organization", s.Organization)
	}
	level.Debug(e.cfg.Logger).Log("msg", "GraphQL queue metrics poll done", "organization", s.Organization, "ok", s.OK(),
		"queues", len(s.Queues), "requests", s.Requests, "duration", s.End.Sub(s.Start), "err", err)
	return s
}

// queueWaitTimes lists the queues with metrics, sorted, each label set
// once (a second cluster of the same name would otherwise collide).
func queueWaitTimes(res *graphql.Result) []QueueWaitTimes {
	type key struct{ cluster, queue string }
	seen := map[key]bool{}
	out := []QueueWaitTimes{}
	for _, c := range res.Clusters {
		for _, q := range c.Queues {
			k := key{labelValue(c.Name), labelValue(q.Key)}
			if q.Metrics == nil || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, QueueWaitTimes{Cluster: k.cluster, Queue: k.queue, Metrics: *q.Metrics})
		}
	}
	slices.SortFunc(out, func(a, b QueueWaitTimes) int {
		return cmp.Or(cmp.Compare(a.Cluster, b.Cluster), cmp.Compare(a.Queue, b.Queue))
	})
	return out
}

// emit writes the snapshots as metrics: up always, the queues only after a
// successful poll (no partial numbers), the rate limits once known.
func (e *QueueMetricsExporter) emit(snaps []*QueueMetricsSnapshot, ch chan<- prometheus.Metric) {
	for _, s := range snaps {
		org := s.Organization
		gauge(ch, e.up, boolValue(s.OK()), org)
		for _, q := range s.Queues {
			for i, v := range [...]float64{q.WaitMin, q.WaitP50, q.WaitP95, q.WaitMax} {
				gauge(ch, e.waitTime, v, org, q.Cluster, q.Queue, waitStats[i])
			}
			for i, v := range [...]int64{q.JobsPassed, q.JobsFailed} {
				gauge(ch, e.finished, float64(v), org, q.Cluster, q.Queue, jobResults[i])
			}
			gauge(ch, e.timestamp, unixSeconds(q.Timestamp), org, q.Cluster, q.Queue)
		}
		rl := s.RateLimits
		if rl.HasGraphQL {
			e.rateLimits[graphql.ScopeGraphQL].emit(ch, org, rl.GraphQL.Limit, rl.GraphQL.Remaining, rl.GraphQL.Reset)
		}
		if rl.HasGraphQLUser {
			e.rateLimits[graphql.ScopeGraphQLUser].emit(ch, org, rl.GraphQLUser.Limit, rl.GraphQLUser.Remaining, rl.GraphQLUser.Reset)
		}
	}
}
