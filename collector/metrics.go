package collector

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// Help of the current per-agent families, which WriteText writes.
const (
	helpAgentInfo            = "Listed agent; always 1."
	helpAgentMetaData        = "One series per meta_data entry of a listed agent; always 1."
	helpAgentBusy            = "1 while the agent runs a job, else 0."
	helpAgentPaused          = "1 while the agent is paused, else 0."
	helpAgentPriority        = "The agent's priority for job assignment."
	helpAgentCreated         = "When the agent was registered."
	helpAgentConnected       = "When the agent connected."
	helpAgentLastJobFinished = "When the agent last finished a job."
	helpAgentLastJobAge      = "Seconds since the agent last finished a job, as of the collection."
	helpAgentJobStarted      = "When the agent's running job started."
)

type descs struct {
	up, duration, requests       *prometheus.Desc
	collected, fieldErrors       *prometheus.Desc
	rest, restUser               rateLimitDescs
	agents, busy, idle, paused   *prometheus.Desc
	byVersion, byTag, departures *prometheus.Desc
	agentDeparted                *prometheus.Desc
	clustersUp, dispatchPaused   *prometheus.Desc
	dispatchPausedAt             *prometheus.Desc
}

func newDescs() descs {
	org := []string{"organization"}
	orgQueue := []string{"organization", "buildkite_cluster", "queue"}
	return descs{
		up:       prometheus.NewDesc(nameUp, "1 when the latest listing of every page of the organization's agents succeeded, else 0. With --collector.min-interval the result may come from memory.", org, nil),
		duration: prometheus.NewDesc(nameScrapeDuration, "How long the latest collection of the organization took.", org, nil),
		requests: prometheus.NewDesc(nameScrapeRequests, "API requests the latest collection made, departure lookups included.", org, nil),
		rest:     newRateLimitDescs(client.ScopeRest),
		restUser: newRateLimitDescs(client.ScopeRestUser),
		collected: prometheus.NewDesc(nameCollectionTime, "When the collection whose result is served ended; --collector.min-interval, "+
			"pacing on the rate-limit budget and 429 windows serve earlier results.", org, nil),
		fieldErrors: prometheus.NewDesc(nameFieldErrorsTotal, "Agent members of an unexpected type or format, treated as absent (the agent still counts), "+
			"by JSON member name (job.started_at when nested).", []string{"organization", "field"}, nil),

		agents:     prometheus.NewDesc(nameAgents, "Listed agents by cluster, queue and connection state; connected and stopping are zero-filled for every known queue.", []string{"organization", "buildkite_cluster", "queue", "connection_state"}, nil),
		busy:       prometheus.NewDesc(nameAgentsBusy, "Listed agents running a job, by queue.", orgQueue, nil),
		idle:       prometheus.NewDesc(nameAgentsIdle, "Connected agents with no job that are not paused, by queue.", orgQueue, nil),
		paused:     prometheus.NewDesc(nameAgentsPaused, "Paused agents, by queue.", orgQueue, nil),
		byVersion:  prometheus.NewDesc(nameAgentsByVersion, "Listed agents by cluster, queue and agent version.", []string{"organization", "buildkite_cluster", "queue", "version"}, nil),
		byTag:      prometheus.NewDesc(nameAgentsByTag, "Listed agents by meta_data value, for the keys given with --collector.tag.", []string{"organization", "key", "value"}, nil),
		departures: prometheus.NewDesc(nameDeparturesTotal, "Agents that left the list, by cluster, queue and the connection state Buildkite reported for them afterwards (unknown when not looked up).", []string{"organization", "buildkite_cluster", "queue", "connection_state"}, nil),

		agentDeparted: prometheus.NewDesc(nameAgentDeparted, "When the exporter saw the agent leave the list; kept for --collector.agent-retention.",
			[]string{"organization", "buildkite_cluster", "id", "name", "queue", "hostname", "connection_state"}, nil),

		clustersUp: prometheus.NewDesc(nameClustersUp, "1 when the latest read of the organization's clusters and queues succeeded, else 0 (then buildkite_cluster labels may be cluster IDs).", org, nil),
		dispatchPaused: prometheus.NewDesc(nameQueueDispatchPaused, "1 when Buildkite does not dispatch jobs to the queue, else 0; every queue the clusters API lists.",
			orgQueue, nil),
		dispatchPausedAt: prometheus.NewDesc(nameQueueDispatchPausedTime, "When dispatch to the queue was paused; only while paused.", orgQueue, nil),
	}
}

func (d *descs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{
		d.up, d.duration, d.requests, d.collected, d.fieldErrors,
		d.agents, d.busy, d.idle, d.paused, d.byVersion, d.byTag, d.departures,
		d.agentDeparted, d.clustersUp, d.dispatchPaused, d.dispatchPausedAt,
	} {
		ch <- desc
	}
	d.rest.describe(ch)
	d.restUser.describe(ch)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t interface{ UnixMilli() int64 }) float64 {
	return float64(t.UnixMilli()) / 1000
}

// emit writes one snapshot as metrics: health and memory of the past always,
// fleet families only when the listing succeeded. The current per-agent
// families are WriteText's.
func (e *Exporter) emit(s *Snapshot, ch chan<- prometheus.Metric) {
	d := &e.descs
	org := s.Organization
	gauge(ch, d.up, boolValue(s.OK()), org)
	gauge(ch, d.duration, s.Duration().Seconds(), org)
	gauge(ch, d.requests, float64(s.Requests), org)
	if !s.Collected.IsZero() {
		gauge(ch, d.collected, unixSeconds(s.Collected), org)
	}
	if s.HasRateLimit {
		d.rest.emit(ch, org, s.RateLimit.Limit, s.RateLimit.Remaining, s.RateLimit.Reset)
	}
	if s.HasUserRateLimit {
		d.restUser.emit(ch, org, s.UserRateLimit.Limit, s.UserRateLimit.Remaining, s.UserRateLimit.Reset)
	}
	e.emitFieldErrors(s, ch)
	for _, c := range s.Departures {
		ch <- prometheus.MustNewConstMetric(d.departures, prometheus.CounterValue, c.Count, org, c.Cluster, c.Queue, c.State)
	}
	if e.cfg.AgentDetails {
		for _, a := range s.Departed {
			gauge(ch, d.agentDeparted, unixSeconds(a.At), org, a.Cluster, a.ID, a.Name, a.QueueLabel, a.Hostname, a.State)
		}
	}
	if e.clusters != nil {
		e.emitClusters(s, ch)
	}
	if !s.OK() {
		return
	}

	for _, q := range s.Queues {
		for state, n := range q.States {
			gauge(ch, d.agents, float64(n), org, q.Cluster, q.Queue, state)
		}
		gauge(ch, d.busy, float64(q.Busy), org, q.Cluster, q.Queue)
		gauge(ch, d.idle, float64(q.Idle), org, q.Cluster, q.Queue)
		gauge(ch, d.paused, float64(q.Paused), org, q.Cluster, q.Queue)
	}
	for _, v := range s.Versions {
		gauge(ch, d.byVersion, float64(v.Agents), org, v.Cluster, v.Queue, v.Version)
	}
	for _, t := range s.Tags {
		gauge(ch, d.byTag, float64(t.Agents), org, t.Key, t.Value)
	}
}

// metaDataEntries calls fn with the key and value of each distinct entry:
// "a" and "a=" are one series, so the second would be a duplicate.
func metaDataEntries(metaData []string, fn func(key, value string)) {
entries:
	for i, m := range metaData {
		for _, earlier := range metaData[:i] {
			if sameEntry(m, earlier) {
				continue entries
			}
		}
		k, v := splitTag(m)
		fn(k, v)
	}
}

// sameEntry reports whether two meta_data entries split into the same key
// and value (equal, or "k" and "k=" of a key without "="), without
// splitting them: it runs for every pair of an agent's entries.
func sameEntry(a, b string) bool {
	if a == b {
		return true
	}
	if len(b) == len(a)+1 {
		a, b = b, a
	}
	return len(a) == len(b)+1 && a[len(b)] == '=' && a[:len(b)] == b && strings.IndexByte(b, '=') < 0
}

// splitTag splits a meta_data entry; one without "=" has the value "".
func splitTag(entry string) (key, value string) {
	k, v, _ := strings.Cut(entry, "=")
	return k, v
}
