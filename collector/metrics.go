package collector

import (
	"github.com/prometheus/client_golang/prometheus"
)

// identity labels of every per-agent family.
var agentLabels = []string{"organization", "id", "name", "queue"}

type descs struct {
	up, duration, requests                  *prometheus.Desc
	rateLimit, rateRemaining, rateReset     *prometheus.Desc
	agents, busy, idle, paused              *prometheus.Desc
	byVersion, byTag, departures            *prometheus.Desc
	agentInfo, agentMetaData                *prometheus.Desc
	agentBusy, agentPaused, agentPriority   *prometheus.Desc
	agentCreated, agentConnected            *prometheus.Desc
	agentLastJob, agentLastJobAge, agentJob *prometheus.Desc
	agentDeparted                           *prometheus.Desc
}

func newDescs() descs {
	org := []string{"organization"}
	orgQueue := []string{"organization", "queue"}
	agent := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, agentLabels...), extra...), nil)
	}
	return descs{
		up:            prometheus.NewDesc(nameUp, "1 when the latest listing of every page of the organization's agents succeeded, else 0. With --collector.min-interval the result may come from memory.", org, nil),
		duration:      prometheus.NewDesc(nameScrapeDuration, "How long the latest collection of the organization took.", org, nil),
		requests:      prometheus.NewDesc(nameScrapeRequests, "API requests the latest collection made, departure lookups included.", org, nil),
		rateLimit:     prometheus.NewDesc(nameRateLimitLimit, "RateLimit-Limit of the latest API response for the organization.", org, nil),
		rateRemaining: prometheus.NewDesc(nameRateLimitRemaining, "RateLimit-Remaining of the latest API response for the organization (may be negative).", org, nil),
		rateReset:     prometheus.NewDesc(nameRateLimitReset, "RateLimit-Reset of the latest API response: seconds until the rate-limit window resets.", org, nil),

		agents:     prometheus.NewDesc(nameAgents, "Listed agents by queue and connection state; connected and stopping are zero-filled for every known queue.", []string{"organization", "queue", "connection_state"}, nil),
		busy:       prometheus.NewDesc(nameAgentsBusy, "Listed agents running a job, by queue.", orgQueue, nil),
		idle:       prometheus.NewDesc(nameAgentsIdle, "Connected agents with no job that are not paused, by queue.", orgQueue, nil),
		paused:     prometheus.NewDesc(nameAgentsPaused, "Paused agents, by queue.", orgQueue, nil),
		byVersion:  prometheus.NewDesc(nameAgentsByVersion, "Listed agents by queue and agent version.", []string{"organization", "queue", "version"}, nil),
		byTag:      prometheus.NewDesc(nameAgentsByTag, "Listed agents by meta_data value, for the keys given with --collector.tag.", []string{"organization", "key", "value"}, nil),
		departures: prometheus.NewDesc(nameDeparturesTotal, "Agents that left the list, by queue and the connection state Buildkite reported for them afterwards (unknown when not looked up).", []string{"organization", "queue", "connection_state"}, nil),

		agentInfo:       agent(nameAgentInfo, "Listed agent; always 1.", "hostname", "version", "connection_state", "os", "arch", "ip_address"),
		agentMetaData:   agent(nameAgentMetaData, "One series per meta_data entry of a listed agent; always 1.", "key", "value"),
		agentBusy:       agent(nameAgentBusy, "1 while the agent runs a job, else 0."),
		agentPaused:     agent(nameAgentPaused, "1 while the agent is paused, else 0."),
		agentPriority:   agent(nameAgentPriority, "The agent's priority for job assignment."),
		agentCreated:    agent(nameAgentCreated, "When the agent was registered."),
		agentConnected:  agent(nameAgentConnected, "When the agent connected."),
		agentLastJob:    agent(nameAgentLastJobFinished, "When the agent last finished a job."),
		agentLastJobAge: agent(nameAgentLastJobAge, "Seconds since the agent last finished a job, as of the collection."),
		agentJob:        agent(nameAgentJobStarted, "When the agent's running job started."),
		agentDeparted:   agent(nameAgentDeparted, "When the exporter saw the agent leave the list; kept for --collector.agent-retention.", "hostname", "connection_state"),
	}
}

func (d *descs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{
		d.up, d.duration, d.requests, d.rateLimit, d.rateRemaining, d.rateReset,
		d.agents, d.busy, d.idle, d.paused, d.byVersion, d.byTag, d.departures,
		d.agentInfo, d.agentMetaData, d.agentBusy, d.agentPaused, d.agentPriority,
		d.agentCreated, d.agentConnected, d.agentLastJob, d.agentLastJobAge, d.agentJob,
		d.agentDeparted,
	} {
		ch <- desc
	}
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
// fleet and per-agent families only when the listing succeeded.
func (e *Exporter) emit(s *Snapshot, ch chan<- prometheus.Metric) {
	d := &e.descs
	org := s.Organization
	gauge(ch, d.up, boolValue(s.OK()), org)
	gauge(ch, d.duration, s.Duration().Seconds(), org)
	gauge(ch, d.requests, float64(s.Requests), org)
	if s.HasRateLimit {
		gauge(ch, d.rateLimit, float64(s.RateLimit.Limit), org)
		gauge(ch, d.rateRemaining, float64(s.RateLimit.Remaining), org)
		gauge(ch, d.rateReset, float64(s.RateLimit.Reset), org)
	}
	for _, c := range s.Departures {
		ch <- prometheus.MustNewConstMetric(d.departures, prometheus.CounterValue, c.Count, org, c.Queue, c.State)
	}
	if e.cfg.AgentDetails {
		for _, a := range s.Departed {
			gauge(ch, d.agentDeparted, unixSeconds(a.At), org, a.ID, a.Name, a.QueueLabel, a.Hostname, a.State)
		}
	}
	if !s.OK() {
		return
	}

	for _, q := range s.Queues {
		for state, n := range q.States {
			gauge(ch, d.agents, float64(n), org, q.Queue, state)
		}
		gauge(ch, d.busy, float64(q.Busy), org, q.Queue)
		gauge(ch, d.idle, float64(q.Idle), org, q.Queue)
		gauge(ch, d.paused, float64(q.Paused), org, q.Queue)
	}
	for _, v := range s.Versions {
		gauge(ch, d.byVersion, float64(v.Agents), org, v.Queue, v.Version)
	}
	for _, t := range s.Tags {
		gauge(ch, d.byTag, float64(t.Agents), org, t.Key, t.Value)
	}
	if e.cfg.AgentDetails {
		for i := range s.Agents {
			e.emitAgent(ch, org, &s.Agents[i], s)
		}
	}
}

func (e *Exporter) emitAgent(ch chan<- prometheus.Metric, org string, a *AgentView, s *Snapshot) {
	d := &e.descs
	id := []string{org, a.ID, a.Name, a.QueueLabel}
	with := func(extra ...string) []string { return append(id[:4:4], extra...) }

	gauge(ch, d.agentInfo, 1, with(a.Hostname, a.Version, a.ConnectionState, a.OS, a.Arch, a.IPAddress)...)
	seen := map[[2]string]bool{}
	for _, m := range a.MetaData {
		k, v := splitTag(m)
		if seen[[2]string{k, v}] {
			continue // a duplicate entry would be a duplicate series
		}
		seen[[2]string{k, v}] = true
		gauge(ch, d.agentMetaData, 1, with(k, v)...)
	}
	gauge(ch, d.agentBusy, boolValue(a.Busy()), id...)
	gauge(ch, d.agentPaused, boolValue(a.Paused), id...)
	if a.Priority != nil {
		gauge(ch, d.agentPriority, float64(*a.Priority), id...)
	}
	if !a.CreatedAt.IsZero() {
		gauge(ch, d.agentCreated, unixSeconds(a.CreatedAt), id...)
	}
	if !a.ConnectedAt.IsZero() {
		gauge(ch, d.agentConnected, unixSeconds(a.ConnectedAt), id...)
	}
	if !a.LastJobFinishedAt.IsZero() {
		gauge(ch, d.agentLastJob, unixSeconds(a.LastJobFinishedAt), id...)
		gauge(ch, d.agentLastJobAge, s.End.Sub(a.LastJobFinishedAt).Seconds(), id...)
	}
	if a.Job != nil && !a.Job.StartedAt.IsZero() {
		gauge(ch, d.agentJob, unixSeconds(a.Job.StartedAt), id...)
	}
}

// splitTag splits a meta_data entry; one without "=" has the value "".
func splitTag(entry string) (key, value string) {
	k, v, _ := cutEquals(entry)
	return k, v
}

func cutEquals(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
