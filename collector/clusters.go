package collector

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// ClusterAPI is what the collector needs to read clusters and their queues
// (scope read_clusters). *client.Client implements it.
type ClusterAPI interface {
	ListClustersWithQueues(ctx context.Context, org string) (*client.ClusterSet, error)
}

// QueueDispatch is the dispatch state of a queue the clusters API lists.
type QueueDispatch struct {
	Cluster, Queue string // label values
	Paused         bool
	PausedAt       time.Time // zero when not paused or not given
}

// clusterView is one good clusters read, immutable once made: what
// resolves an agent's cluster ID to its label and default queue.
type clusterView struct {
	names        map[string]string // cluster ID -> name, "" when the API sent none
	defaultQueue map[string]string // cluster ID -> the key of its default queue
	queues       []queueRef        // every listed queue
	dispatch     []QueueDispatch   // sorted by cluster, then queue
}

func newClusterView(set *client.ClusterSet) *clusterView {
	v := &clusterView{names: map[string]string{}, defaultQueue: map[string]string{}}
	for _, c := range set.Clusters {
		v.names[c.ID] = labelValue(c.Name)
		if q, ok := c.DefaultQueue(); ok {
			v.defaultQueue[c.ID] = labelValue(q.Key)
		}
	}
	seen := map[queueLabel]bool{}
	for _, c := range set.Clusters {
		for _, q := range c.Queues {
			key := labelValue(q.Key)
			v.queues = append(v.queues, queueRef{c.ID, key})
			l := queueLabel{v.label(c.ID), key}
			if seen[l] { // two clusters of one name: one series
				continue
			}
			seen[l] = true
			d := QueueDispatch{Cluster: l.cluster, Queue: l.queue, Paused: q.DispatchPaused}
			if q.DispatchPaused {
				d.PausedAt = q.DispatchPausedAt
			}
			v.dispatch = append(v.dispatch, d)
		}
	}
	sort.Slice(v.dispatch, func(i, j int) bool {
		a, b := v.dispatch[i], v.dispatch[j]
		return a.Cluster < b.Cluster || a.Cluster == b.Cluster && a.Queue < b.Queue
	})
	return v
}

// label is the buildkite_cluster value of a cluster ID: its name when
// known, else the ID itself ("" for an unclustered agent). v may be nil.
func (v *clusterView) label(id string) string {
	if v != nil {
		if name := v.names[id]; name != "" {
			return name
		}
	}
	return id
}

// defaultQueueOf is the key of the cluster's default queue, "" when unknown.
func (v *clusterView) defaultQueueOf(id string) string {
	if v == nil || id == "" {
		return ""
	}
	return v.defaultQueue[id]
}

// configuredQueue resolves a --collector.queue value: QUEUE (unclustered)
// or CLUSTER/QUEUE, split at the first "/", where CLUSTER is a cluster's
// name or ID. A cluster the read does not know stands for itself.
func (v *clusterView) configuredQueue(flag string) queueRef {
	cluster, queue, ok := strings.Cut(flag, "/")
	if !ok {
		return queueRef{"", flag}
	}
	if v != nil {
		if _, known := v.names[cluster]; !known {
			for id, name := range v.names {
				if name == cluster {
					cluster = id
					break
				}
			}
		}
	}
	return queueRef{cluster, queue}
}

// configuredQueuesOf returns the queues of --collector.queue values that
// name cluster (by name, as the Agent Metrics API gives it; "" for
// unclustered): QUEUE for unclustered, CLUSTER/QUEUE for a cluster.
func configuredQueuesOf(flags []string, cluster string) []string {
	var queues []string
	for _, f := range flags {
		c, q, ok := strings.Cut(f, "/")
		if !ok {
			c, q = "", f
		}
		if c == cluster {
			queues = append(queues, q)
		}
	}
	return queues
}

// queueRef is a queue as the exporter remembers it: by its cluster's ID,
// so a name learned later relabels it.
type queueRef struct{ clusterID, queue string }

// queueLabel is a queue by its label values.
type queueLabel struct{ cluster, queue string }

// clusterReads is an organization's clusters reads: the last good one and
// when to read again. A collection holds the organization's shared-collection
// key while it reads, so only status readers race with it.
type clusterReads struct {
	mu       sync.Mutex
	view     *clusterView // last good read; nil before one
	err      error        // of the latest read; nil when it succeeded
	next     time.Time    // read again at or after this
	errClass string       // of the latest read, for logging once per change
}

// current returns the last good read and the latest read's error.
func (c *clusterReads) current() (*clusterView, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.view, c.err
}

// readClusters reads the organization's clusters when a read is due: on
// the first collection, after Config.ClustersInterval, and at the next
// collection after a failure (but after the interval when the token lacks
// read_clusters: asking again every scrape would only spend the rate
// limit). Its requests count in the snapshot's; a failure keeps the last
// good read and never fails the collection.
func (e *Exporter) readClusters(ctx context.Context, m *orgMemory, s *Snapshot) {
	if e.clusters == nil {
		return
	}
	c := &m.clusterReads
	now := e.now()
	c.mu.Lock()
	due := !now.Before(c.next)
	c.mu.Unlock()
	if due {
		set, err := e.clusters.ListClustersWithQueues(ctx, m.org)
		if set != nil {
			s.Requests += int64(set.Requests)
		}
		c.mu.Lock()
		c.err = err
		switch {
		case err == nil:
			c.view, c.next = newClusterView(set), now.Add(e.cfg.ClustersInterval)
		case errors.Is(err, client.ErrForbidden):
			c.next = now.Add(e.cfg.ClustersInterval)
		}
		class := ""
		if err != nil {
			class = errorClass(err)
		}
		changed, previous := class != c.errClass, c.errClass
		c.errClass = class
		c.mu.Unlock()
		e.logClusters(m.org, err, changed, previous)
	}
	c.fill(s)
}

// fill sets the snapshot's clusters state from the latest read.
func (c *clusterReads) fill(s *Snapshot) {
	view, err := c.current()
	s.ClustersUp, s.ClustersErr = err == nil && view != nil, err
	if view != nil {
		s.Dispatch = view.dispatch
	}
}

// logClusters logs a failed read once per change of its kind, and recovery.
func (e *Exporter) logClusters(org string, err error, changed bool, previous string) {
	switch {
	case err != nil && changed && errors.Is(err, client.ErrForbidden):
		level.Warn(e.logger).Log("msg", "the token lacks the read_clusters scope: buildkite_cluster labels are cluster UUIDs, "+
			"and there are no zero-filled cluster queues or dispatch states; buildkite_clusters_up is 0",
			"organization", org, "scope", "read_clusters", "err", err)
	case err != nil && changed:
		level.Error(e.logger).Log("msg", "reading clusters failed; the last good read is used until it recovers",
			"organization", org, "err", err)
	case err == nil && changed && previous != "":
		level.Info(e.logger).Log("msg", "reading clusters recovered", "organization", org)
	}
}

// emitClusters writes buildkite_clusters_up and the dispatch state of
// every queue of the last good clusters read.
func (e *Exporter) emitClusters(s *Snapshot, ch chan<- prometheus.Metric) {
	d := &e.descs
	org := s.Organization
	gauge(ch, d.clustersUp, boolValue(s.ClustersUp), org)
	for _, q := range s.Dispatch {
		gauge(ch, d.dispatchPaused, boolValue(q.Paused), org, q.Cluster, q.Queue)
		if q.Paused && !q.PausedAt.IsZero() {
			gauge(ch, d.dispatchPausedAt, unixSeconds(q.PausedAt), org, q.Cluster, q.Queue)
		}
	}
}

// resolveQueues turns remembered queues into label values, sorted and
// without duplicates (two clusters of one name count as one).
func resolveQueues(view *clusterView, refs []queueRef) []queueLabel {
	seen := make(map[queueLabel]bool, len(refs))
	out := make([]queueLabel, 0, len(refs))
	for _, r := range refs {
		l := queueLabel{view.label(r.clusterID), r.queue}
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].cluster < out[j].cluster || out[i].cluster == out[j].cluster && out[i].queue < out[j].queue
	})
	return out
}
