// Package collector turns Buildkite agent listings into Prometheus metrics.
//
// It knows nothing of Buildkite's HTTP: it asks an AgentAPI (the client
// package in production, a fake in tests) for listings and, on every
// scrape, writes metrics from immutable snapshots (WriteText). NewHandler
// serves them as /metrics.
package collector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// AgentAPI is what the collector needs of Buildkite. *client.Client
// implements it, and BudgetAPI, which pacing uses when the API has it.
type AgentAPI interface {
	ListAgents(ctx context.Context, org string, opts client.ListOptions) (*client.AgentList, error)
	// GetAgent also returns the requests it made, as ListAgents does in
	// AgentList.Requests (also with an error).
	GetAgent(ctx context.Context, org, id string) (*client.Agent, int, error)
	RateLimit(org string) (client.RateLimit, bool)
}

// Config holds the collector's settings; the flags of the same names set
// them.
type Config struct {
	Organizations  []string
	AgentDetails   bool          // per-agent families
	Queues         []string      // always zero-filled
	QueueRetention time.Duration // how long a queue seen once stays known
	AgentRetention time.Duration // how long a departed agent is exposed
	// MaxDepartedAgents bounds the departed agents kept (the oldest are
	// dropped first), whatever the churn; 0 means DefaultMaxDepartedAgents.
	MaxDepartedAgents int
	DepartureLookups  int      // Get calls per scrape to learn why agents left
	Tags              []string // meta_data keys counted in buildkite_agents_by_tag
	// Clusters: read clusters and their queues; the API must then be a
	// ClusterAPI too. ClustersInterval: how often (5m when 0).
	Clusters         bool
	ClustersInterval time.Duration
	MinInterval      time.Duration // serve results younger than this from memory
	Timeout          time.Duration // bound on every collection, whatever the scrapes' deadlines
	Now              func() time.Time
	Logger           log.Logger
}

// DefaultMaxDepartedAgents is Config.MaxDepartedAgents when not set.
const DefaultMaxDepartedAgents = 10000

// Exporter collects every configured organization; Scrape gives one scrape
// of it, which WriteText writes.
type Exporter struct {
	api    AgentAPI
	cfg    Config
	now    func() time.Time
	logger log.Logger
	orgs   []*orgMemory
	flight flightGroup
	// clusters is nil without Config.Clusters.
	clusters ClusterAPI
	budgets  BudgetAPI
	descs    descs
}

// New returns an Exporter for cfg.
func New(api AgentAPI, cfg Config) (*Exporter, error) {
	if api == nil {
		return nil, errors.New("collector: no API")
	}
	if len(cfg.Organizations) == 0 {
		return nil, errors.New("collector: no organization")
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
	if cfg.MaxDepartedAgents <= 0 {
		cfg.MaxDepartedAgents = DefaultMaxDepartedAgents
	}
	if cfg.DepartureLookups < 0 {
		return nil, errors.New("collector: departure lookups must not be negative")
	}
	e := &Exporter{api: api, cfg: cfg, now: cfg.Now, logger: cfg.Logger, descs: newDescs()}
	e.budgets, _ = api.(BudgetAPI)
	if e.budgets == nil {
		e.budgets = restOnly{api}
	}
	if cfg.Clusters {
		clusters, ok := api.(ClusterAPI)
		if !ok {
			return nil, errors.New("collector: clusters asked for, but the API cannot list them")
		}
		e.clusters = clusters
		if e.cfg.ClustersInterval <= 0 {
			e.cfg.ClustersInterval = 5 * time.Minute
		}
	}
	seen := map[string]bool{}
	for _, org := range cfg.Organizations {
		if org == "" || seen[org] {
			return nil, fmt.Errorf("collector: organization %q is empty or given twice", org)
		}
		seen[org] = true
		e.orgs = append(e.orgs, newOrgMemory(org, cfg.MaxDepartedAgents))
	}
	return e, nil
}

// Collection returns a snapshot of every organization, collected
// concurrently, or served from memory within Config.MinInterval.
// Concurrent callers share one collection per organization.
func (e *Exporter) Collection(ctx context.Context) []*Snapshot {
	snaps := concurrently(e.orgs, func(m *orgMemory) *Snapshot { return e.snapshot(ctx, m) })
	// The budgets as they are once every organization is done: the token
	// user's is shared, so each organization shows the same.
	for i, s := range snaps {
		snaps[i] = e.withBudgets(s)
	}
	return snaps
}

// OrgStatus is what the exporter last saw of one organization.
type OrgStatus struct {
	Organization string
	Latest       *Snapshot // nil before the first collection
	History      []CollectionSummary
}

// Status returns the latest snapshots and recent collections without
// collecting anything.
func (e *Exporter) Status() []OrgStatus {
	out := make([]OrgStatus, 0, len(e.orgs))
	for _, m := range e.orgs {
		latest, history := m.status()
		out = append(out, OrgStatus{Organization: m.org, Latest: latest, History: history})
	}
	return out
}

// snapshot returns org's result for one scrape: from memory within
// Config.MinInterval, or while the rate-limit budget cannot cover a
// listing (pacing, a 429 window), else from a collection shared with
// concurrent scrapes.
func (e *Exporter) snapshot(ctx context.Context, m *orgMemory) *Snapshot {
	if s := m.fresh(e.now(), e.cfg.MinInterval); s != nil {
		return s
	}
	if s := e.held(m); s != nil {
		return s
	}
	s, ok := shared(ctx, &e.flight, m.org, e.cfg.Timeout, e.logger, []any{"organization", m.org}, func(cctx context.Context) *Snapshot {
		if s := m.fresh(e.now(), e.cfg.MinInterval); s != nil {
			return s
		}
		if s := e.held(m); s != nil {
			return s
		}
		return e.collect(cctx, m)
	})
	if !ok {
		// This scrape's own deadline passed while it waited for the
		// collection, which goes on; its failure is this scrape's only,
		// never recorded nor served to others.
		now := e.now()
		s = &Snapshot{Organization: m.org, Start: now, End: now, Err: fmt.Errorf("waiting for a collection in progress: %w", ctx.Err())}
		// A failed scrape still carries the health families and the
		// zero-filled counters, as a failed collection does.
		e.setRateLimits(s)
		m.clusterReads.fill(s)
		s.FieldErrors = m.fieldErrorCounts()
		m.past(s, m.knownQueues(now, e.cfg.QueueRetention, e.cfg.Queues), e.cfg.AgentRetention)
	}
	return s
}

// withBudgets returns a copy of a result with the REST budgets as the
// client knows them now: results from memory keep their collection's, and
// other organizations' responses move the token user's.
func (e *Exporter) withBudgets(s *Snapshot) *Snapshot {
	c := *s // shallow: snapshots are read only
	e.setRateLimits(&c)
	return &c
}

// collect lists one organization and updates its memory.
func (e *Exporter) collect(ctx context.Context, m *orgMemory) *Snapshot {
	s := &Snapshot{Organization: m.org, Start: e.now()}
	// First, so that the agents' clusters and default queues are known.
	e.readClusters(ctx, m, s)
	clusters, _ := m.clusterReads.current()

	list, err := e.api.ListAgents(ctx, m.org, client.ListOptions{})
	if list != nil {
		s.Requests += int64(list.Requests)
	}
	if err != nil {
		s.Err = err
	} else {
		e.listed(ctx, m, s, list, clusters)
	}

	s.End = e.now()
	e.setRateLimits(s)
	if rle := rateLimited(s.Err); rle != nil {
		// A 429 (this listing's, or another organization's that closed
		// the token user's budget while this one ran) holds listings back
		// until its reset. The latest complete result stands, as with
		// pacing; the 429 shows in the history and the request counter.
		e.logHold(m, &hold{blocked: true, scope: rle.Scope, reset: rle.ResetAt.Sub(s.End)})
		if good := m.goodResult(); good != nil {
			m.remember(s)
			return good
		}
	} else {
		e.logResume(m)
	}
	s.Collected = s.End
	s.FieldErrors = m.fieldErrorCounts()
	known := m.knownQueues(s.End, e.cfg.QueueRetention, e.cfg.Queues)
	if s.OK() {
		s.Queues, s.Versions, s.Tags = fleetCounts(s.Agents, known, e.cfg.Tags)
	}
	m.past(s, known, e.cfg.AgentRetention)
	e.logResult(m, s)
	return s
}

// listed makes a successful listing the snapshot's agents and updates the
// organization's memory: departures (looked up within the lookup
// budget), queues seen, field errors.
func (e *Exporter) listed(ctx context.Context, m *orgMemory, s *Snapshot, list *client.AgentList, clusters *clusterView) {
	s.Pages, s.Duplicates = list.Pages, list.Duplicates
	// Sorted by ID: the order of the series, of the status page and
	// of the walk that finds departures. Indices are sorted rather
	// than the views (about 500 bytes each), then the views are made
	// in that order. Stable, so that of IDs equal once made valid
	// UTF-8 the first listed is kept: one agent, or its series would
	// clash.
	ids := make([]string, len(list.Agents))
	order := make([]int32, len(list.Agents))
	for i := range list.Agents {
		ids[i], order[i] = labelValue(list.Agents[i].ID), int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int { return strings.Compare(ids[a], ids[b]) })
	s.Agents = make([]AgentView, 0, len(list.Agents))
	for k, i := range order {
		if k > 0 && ids[i] == ids[order[k-1]] {
			s.Duplicates++
			continue
		}
		s.Agents = append(s.Agents, newAgentView(m.org, list.Agents[i], clusters))
	}
	e.logFieldErrors(m, list.FieldErrors)
	listed := e.now()
	gone := m.observe(s.Agents, listed)
	var lookupRequests int
	s.Lookups, lookupRequests = e.departures(ctx, m, gone)
	s.Requests += int64(lookupRequests)
	m.expire(listed, e.cfg.QueueRetention, e.cfg.AgentRetention, e.cfg.Queues)
}

// departures learns why each gone agent left, within the lookup budget,
// and counts it. It returns the number of lookups made and the requests
// they sent.
func (e *Exporter) departures(ctx context.Context, m *orgMemory, gone []DepartedAgent) (lookups, requests int) {
	budget := e.lookupBudget(m.org)
	for _, d := range gone {
		if lookups < budget && ctx.Err() == nil {
			lookups++
			a, n, err := e.api.GetAgent(ctx, m.org, d.ID)
			requests += n
			switch {
			case err == nil && (a.ConnectionState == stateConnected || a.ConnectionState == stateStopping):
				// Skipped by a shifting page, not gone.
				m.stillPresent(d)
				continue
			case err == nil && a.ConnectionState != "":
				d.State = labelValue(a.ConnectionState)
			case err != nil:
				level.Debug(e.logger).Log("msg", "departure lookup failed", "organization", m.org, "agent", d.ID, "err", err)
				if errors.Is(err, client.ErrRateLimited) {
					budget = 0
				}
			}
		}
		level.Debug(e.logger).Log("msg", "agent departed", "organization", m.org, "agent", d.ID, "name", d.Name, "hostname", d.Hostname, "state", d.State)
		m.depart(d)
	}
	return lookups, requests
}

// logResult logs a failure once per change of its kind, and recovery.
func (e *Exporter) logResult(m *orgMemory, s *Snapshot) {
	changed, previous := m.record(s)
	switch {
	case s.Err != nil && changed:
		level.Error(e.logger).Log("msg", "collection failed; buildkite_up is 0 until it recovers", "organization", m.org, "err", s.Err)
	case s.Err == nil && changed && previous != "":
		level.Info(e.logger).Log("msg", "collection recovered", "organization", m.org, "agents", len(s.Agents))
	}
	level.Debug(e.logger).Log("msg", "collection done", "organization", m.org, "ok", s.OK(), "agents", len(s.Agents),
		"pages", s.Pages, "requests", s.Requests, "duration", s.Duration(), "err", s.Err)
}
