package collector

import (
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// identity labels of every per-agent family.
var agentLabels = []string{"organization", "id", "name", "queue"}

// Help of the current per-agent families, shared by their Descs and the
// text written by WriteText.
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
	up, duration, requests                  *prometheus.Desc
	rateLimit, rateRemaining, rateReset     *prometheus.Desc
	agents, busy, idle, paused              *prometheus.Desc
	byVersion, byTag, departures            *prometheus.Desc
	agentInfo, agentMetaData                *prometheus.Desc
	agentBusy, agentPaused, agentPriority   *prometheus.Desc
	agentCreated, agentConnected            *prometheus.Desc
	agentLastJob, agentLastJobAge, agentJob *prometheus.Desc
	agentDeparted                           *prometheus.Desc

	// label orders of the per-agent families: identity labels only, and
	// those of agentInfo and agentMetaData.
	agentLabels, infoLabels, metaDataLabels *labelOrder
}

func newDescs() descs {
	org := []string{"organization"}
	orgQueue := []string{"organization", "queue"}
	agent := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, agentLabels...), extra...), nil)
	}
	infoExtra := []string{"hostname", "version", "connection_state", "os", "arch", "ip_address"}
	metaDataExtra := []string{"key", "value"}
	return descs{
		agentLabels:    newLabelOrder(agentLabels),
		infoLabels:     newLabelOrder(append(append([]string{}, agentLabels...), infoExtra...)),
		metaDataLabels: newLabelOrder(append(append([]string{}, agentLabels...), metaDataExtra...)),

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

		agentInfo:       agent(nameAgentInfo, helpAgentInfo, infoExtra...),
		agentMetaData:   agent(nameAgentMetaData, helpAgentMetaData, metaDataExtra...),
		agentBusy:       agent(nameAgentBusy, helpAgentBusy),
		agentPaused:     agent(nameAgentPaused, helpAgentPaused),
		agentPriority:   agent(nameAgentPriority, helpAgentPriority),
		agentCreated:    agent(nameAgentCreated, helpAgentCreated),
		agentConnected:  agent(nameAgentConnected, helpAgentConnected),
		agentLastJob:    agent(nameAgentLastJobFinished, helpAgentLastJobFinished),
		agentLastJobAge: agent(nameAgentLastJobAge, helpAgentLastJobAge),
		agentJob:        agent(nameAgentJobStarted, helpAgentJobStarted),
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
// fleet and per-agent families only when the listing succeeded. Without
// agents the current per-agent families are left out: WriteText writes
// them as text.
func (e *Exporter) emit(s *Snapshot, ch chan<- prometheus.Metric, agents bool) {
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
	if e.cfg.AgentDetails && agents {
		for i := range s.Agents {
			e.emitAgent(ch, &s.Organization, &s.Agents[i], s)
		}
	}
}

// emitAgent writes the per-agent series of one agent. At tens of thousands
// of agents these are nearly all the series of a scrape, so they are built
// without prometheus.MustNewConstMetric, which allocates three objects per
// label of every series: the label pairs point at the snapshot's immutable
// strings, the identity labels are one slice shared by the agent's series,
// and the agent's pairs and series come from a few allocations. The result
// is the same dto.Metric a const metric writes.
func (e *Exporter) emitAgent(ch chan<- prometheus.Metric, org *string, a *AgentView, s *Snapshot) {
	d := &e.descs
	nmd := len(a.MetaData)
	b := agentBatch{
		pairs:  make([]dto.LabelPair, 0, len(d.agentLabels.from)+len(d.infoLabels.from)+nmd*len(d.metaDataLabels.from)),
		ptrs:   make([]*dto.LabelPair, 0, len(d.agentLabels.from)+len(d.infoLabels.from)+nmd*len(d.metaDataLabels.from)),
		series: make([]agentGauge, 0, 9+nmd),
	}
	id := b.labels(d.agentLabels, org, &a.ID, &a.Name, &a.QueueLabel)

	b.gauge(ch, d.agentInfo, 1, b.labels(d.infoLabels, org, &a.ID, &a.Name, &a.QueueLabel,
		&a.Hostname, &a.Version, &a.ConnectionState, &a.OS, &a.Arch, &a.IPAddress))
	if nmd > 0 {
		kv := make([]string, 0, 2*nmd) // the split entries, which the label pairs point at
		metaDataEntries(a.MetaData, func(k, v string) {
			kv = append(kv, k, v)
			n := len(kv)
			b.gauge(ch, d.agentMetaData, 1, b.labels(d.metaDataLabels, org, &a.ID, &a.Name, &a.QueueLabel, &kv[n-2], &kv[n-1]))
		})
	}
	b.gauge(ch, d.agentBusy, boolValue(a.Busy()), id)
	b.gauge(ch, d.agentPaused, boolValue(a.Paused), id)
	if a.Priority != nil {
		b.gauge(ch, d.agentPriority, float64(*a.Priority), id)
	}
	if !a.CreatedAt.IsZero() {
		b.gauge(ch, d.agentCreated, unixSeconds(a.CreatedAt), id)
	}
	if !a.ConnectedAt.IsZero() {
		b.gauge(ch, d.agentConnected, unixSeconds(a.ConnectedAt), id)
	}
	if !a.LastJobFinishedAt.IsZero() {
		b.gauge(ch, d.agentLastJob, unixSeconds(a.LastJobFinishedAt), id)
		b.gauge(ch, d.agentLastJobAge, s.End.Sub(a.LastJobFinishedAt).Seconds(), id)
	}
	if a.Job != nil && !a.Job.StartedAt.IsZero() {
		b.gauge(ch, d.agentJob, unixSeconds(a.Job.StartedAt), id)
	}
}

// labelOrder is a family's label names in the order a metric's label pairs
// must have (sorted by name), each with the index of its value in the
// Desc's order of variable labels.
type labelOrder struct {
	names []*string
	from  []int
}

func newLabelOrder(names []string) *labelOrder {
	from := make([]int, len(names))
	for i := range from {
		from[i] = i
	}
	sort.Slice(from, func(i, j int) bool { return names[from[i]] < names[from[j]] })
	l := &labelOrder{names: make([]*string, len(names)), from: from}
	for i, k := range from {
		name := names[k]
		l.names[i] = &name
	}
	return l
}

// agentBatch holds the label pairs and series of one agent.
type agentBatch struct {
	pairs  []dto.LabelPair
	ptrs   []*dto.LabelPair
	series []agentGauge
}

// labels returns the sorted label pairs of values, given in Desc order.
// The values must stay unchanged until the scrape is written.
func (b *agentBatch) labels(l *labelOrder, values ...*string) []*dto.LabelPair {
	start := len(b.ptrs)
	for i, k := range l.from {
		n := len(b.pairs)
		b.pairs = append(b.pairs, dto.LabelPair{})
		p := &b.pairs[n]
		p.Name, p.Value = l.names[i], values[k]
		b.ptrs = append(b.ptrs, p)
	}
	return b.ptrs[start:len(b.ptrs):len(b.ptrs)]
}

func (b *agentBatch) gauge(ch chan<- prometheus.Metric, desc *prometheus.Desc, v float64, labels []*dto.LabelPair) {
	b.series = append(b.series, agentGauge{})
	g := &b.series[len(b.series)-1]
	g.desc, g.labels, g.value = desc, labels, v
	g.gauge.Value = &g.value
	ch <- g
}

// agentGauge is a gauge whose label pairs are built by agentBatch. Like a
// const metric it is immutable once sent.
type agentGauge struct {
	desc   *prometheus.Desc
	labels []*dto.LabelPair
	value  float64
	gauge  dto.Gauge
}

func (g *agentGauge) Desc() *prometheus.Desc { return g.desc }

func (g *agentGauge) Write(m *dto.Metric) error {
	m.Label = g.labels
	m.Gauge = &g.gauge
	return nil
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
