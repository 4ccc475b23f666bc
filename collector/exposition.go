package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Scrape is one scrape of an Exporter, bound to the scrape's deadline. As
// a prometheus.Collector it emits every family but the current per-agent
// ones, which WriteText writes as text from the same snapshots.
//
// Why: at 10,000 agents the per-agent families are about 124,000 series,
// and client_golang's gather (a consistency check and hash per series, a
// sort of every family) and text encoding cost about 70 ms of CPU per
// 1,000 agents, far more than the collection. Written straight from the
// snapshot in the order it is already sorted in (by agent ID), the same
// series cost a few milliseconds. The tests parse the text back and check
// it against the golden files.
type Scrape struct {
	e     *Exporter
	ctx   context.Context
	once  sync.Once
	snaps []*Snapshot
}

// Scrape returns one scrape of the exporter whose collection ends at ctx's
// deadline.
func (e *Exporter) Scrape(ctx context.Context) *Scrape { return &Scrape{e: e, ctx: ctx} }

// Snapshots collects on first use (concurrent scrapes share a collection)
// and returns the scrape's snapshots.
func (s *Scrape) Snapshots() []*Snapshot {
	s.once.Do(func() { s.snaps = s.e.Collection(s.ctx) })
	return s.snaps
}

// Describe sends every descriptor Collect can emit.
func (s *Scrape) Describe(ch chan<- *prometheus.Desc) { s.e.descs.describe(ch) }

// Collect emits the scrape's metrics but the current per-agent families.
func (s *Scrape) Collect(ch chan<- prometheus.Metric) {
	for _, snap := range s.Snapshots() {
		s.e.emit(snap, ch)
	}
}

// WriteText writes what g gathers in the text format, then the current
// per-agent families of scrapes. Each scrape must be registered in g (or
// have been collected): their metrics are gathered first, so that counters
// kept across scrapes include the requests of this collection. A gather
// error is returned after everything gathered has been written, as
// promhttp.ContinueOnError serves it.
func WriteText(w io.Writer, g prometheus.Gatherer, scrapes ...*Scrape) error {
	mfs, gatherErr := g.Gather()
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return errors.Join(gatherErr, err)
		}
	}
	if len(scrapes) > 0 {
		tw := &textWriter{w: w, buf: make([]byte, 0, textBufferSize)}
		for _, f := range agentTextFamilies {
			for _, s := range scrapes {
				s.writeFamily(tw, f)
			}
			tw.header = false
		}
		if err := tw.flush(); err != nil {
			return errors.Join(gatherErr, err)
		}
	}
	return gatherErr
}

// textBufferSize bounds the text held before it is written.
const textBufferSize = 64 << 10

// agentTextFamily is a current per-agent family; series appends an agent's
// series to t (none when the agent has no value for the family).
type agentTextFamily struct {
	name, help string
	series     func(t *textWriter, s *Snapshot, a *AgentView)
}

// agentTextFamilies in name order, as client_golang sorts families; the
// labels of each series are in name order too.
var agentTextFamilies = []agentTextFamily{
	{nameAgentBusy, helpAgentBusy, func(t *textWriter, _ *Snapshot, a *AgentView) {
		t.identity(nameAgentBusy, a, boolValue(a.Busy()))
	}},
	{nameAgentConnected, helpAgentConnected, func(t *textWriter, _ *Snapshot, a *AgentView) {
		if !a.ConnectedAt.IsZero() {
			t.identityTime(nameAgentConnected, a, a.ConnectedAt)
		}
	}},
	{nameAgentCreated, helpAgentCreated, func(t *textWriter, _ *Snapshot, a *AgentView) {
		if !a.CreatedAt.IsZero() {
			t.identityTime(nameAgentCreated, a, a.CreatedAt)
		}
	}},
	{nameAgentInfo, helpAgentInfo, func(t *textWriter, _ *Snapshot, a *AgentView) {
		t.name(nameAgentInfo)
		t.label("arch", a.Arch, true, a.plainText)
		t.label("buildkite_cluster", a.Cluster, false, a.plainText)
		t.label("connection_state", a.ConnectionState, false, a.plainText)
		t.label("hostname", a.Hostname, false, a.plainText)
		t.label("id", a.ID, false, a.plainText)
		t.label("ip_address", a.IPAddress, false, a.plainText)
		t.label("name", a.Name, false, a.plainText)
		t.label("organization", t.org, false, a.plainText)
		t.label("os", a.OS, false, a.plainText)
		t.label("queue", a.QueueLabel, false, a.plainText)
		t.label("version", a.Version, false, a.plainText)
		t.value(1)
	}},
	{nameAgentJobStarted, helpAgentJobStarted, func(t *textWriter, _ *Snapshot, a *AgentView) {
		if a.Job != nil && !a.Job.StartedAt.IsZero() {
			t.identityTime(nameAgentJobStarted, a, a.Job.StartedAt)
		}
	}},
	{nameAgentLastJobAge, helpAgentLastJobAge, func(t *textWriter, s *Snapshot, a *AgentView) {
		if !a.LastJobFinishedAt.IsZero() {
			t.identity(nameAgentLastJobAge, a, s.End.Sub(a.LastJobFinishedAt).Seconds())
		}
	}},
	{nameAgentLastJobFinished, helpAgentLastJobFinished, func(t *textWriter, _ *Snapshot, a *AgentView) {
		if !a.LastJobFinishedAt.IsZero() {
			t.identityTime(nameAgentLastJobFinished, a, a.LastJobFinishedAt)
		}
	}},
	{nameAgentMetaData, helpAgentMetaData, func(t *textWriter, _ *Snapshot, a *AgentView) {
		metaDataEntries(a.MetaData, func(k, v string) {
			t.name(nameAgentMetaData)
			t.label("buildkite_cluster", a.Cluster, true, a.plainText)
			t.label("id", a.ID, false, a.plainText)
			t.label("key", k, false, a.plainText)
			t.label("name", a.Name, false, a.plainText)
			t.label("organization", t.org, false, a.plainText)
			t.label("queue", a.QueueLabel, false, a.plainText)
			t.label("value", v, false, a.plainText)
			t.value(1)
		})
	}},
	{nameAgentPaused, helpAgentPaused, func(t *textWriter, _ *Snapshot, a *AgentView) {
		t.identity(nameAgentPaused, a, boolValue(a.Paused))
	}},
	{nameAgentPriority, helpAgentPriority, func(t *textWriter, _ *Snapshot, a *AgentView) {
		if a.Priority != nil {
			t.identity(nameAgentPriority, a, float64(*a.Priority))
		}
	}},
}

// writeFamily appends the series of f for every agent of the scrape's
// successful snapshots.
func (s *Scrape) writeFamily(t *textWriter, f agentTextFamily) {
	if !s.e.cfg.AgentDetails {
		return
	}
	t.family = &f
	for _, snap := range s.Snapshots() {
		if !snap.OK() {
			continue
		}
		t.org = snap.Organization
		for i := range snap.Agents {
			f.series(t, snap, &snap.Agents[i])
		}
	}
}

// textWriter appends series in the text exposition format (version 0.0.4)
// and writes them out in chunks; the first write error stops it.
type textWriter struct {
	w      io.Writer
	buf    []byte
	err    error
	family *agentTextFamily
	header bool // family's HELP and TYPE written
	org    string
}

// name starts a series, after the family's HELP and TYPE lines when it is
// the family's first: a family without series has none, as in
// client_golang's output.
func (t *textWriter) name(name string) {
	if !t.header {
		t.header = true
		t.buf = append(t.buf, "# HELP "...)
		t.buf = append(t.buf, name...)
		t.buf = append(t.buf, ' ')
		t.buf = appendEscaped(t.buf, t.family.help, false)
		t.buf = append(t.buf, "\n# TYPE "...)
		t.buf = append(t.buf, name...)
		t.buf = append(t.buf, " gauge\n"...)
	}
	t.buf = append(t.buf, name...)
}

// identity writes a series with the identity labels only.
func (t *textWriter) identity(name string, a *AgentView, v float64) {
	t.identityLabels(name, a)
	t.value(v)
}

// identityTime writes a timestamp series with the identity labels only.
func (t *textWriter) identityTime(name string, a *AgentView, at time.Time) {
	t.identityLabels(name, a)
	t.unixMillis(at.UnixMilli())
}

func (t *textWriter) identityLabels(name string, a *AgentView) {
	t.name(name)
	t.buf = append(t.buf, '{')
	if a.textIdentity != "" { // built with the snapshot's organization
		t.buf = append(t.buf, a.textIdentity...)
	} else {
		t.buf = appendIdentity(t.buf, t.org, a, false)
	}
}

// appendIdentity appends the identity labels of a, in name order;
// plain: no value needs escaping.
func appendIdentity(buf []byte, org string, a *AgentView, plain bool) []byte {
	buf = appendLabelText(buf, "buildkite_cluster", a.Cluster, plain)
	buf = append(buf, ',')
	buf = appendLabelText(buf, "id", a.ID, plain)
	buf = append(buf, ',')
	buf = appendLabelText(buf, "name", a.Name, plain)
	buf = append(buf, ',')
	buf = appendLabelText(buf, "organization", org, plain)
	buf = append(buf, ',')
	return appendLabelText(buf, "queue", a.QueueLabel, plain)
}

// label appends a label; plain: the value needs no escaping.
func (t *textWriter) label(name, value string, first, plain bool) {
	if first {
		t.buf = append(t.buf, '{')
	} else {
		t.buf = append(t.buf, ',')
	}
	t.buf = appendLabelText(t.buf, name, value, plain)
}

// appendLabelText appends name="value"; plain: value needs no escaping.
func appendLabelText(buf []byte, name, value string, plain bool) []byte {
	buf = append(buf, name...)
	buf = append(buf, '=', '"')
	if plain {
		buf = append(buf, value...)
	} else {
		buf = appendEscaped(buf, value, true)
	}
	return append(buf, '"')
}

// needsEscaping reports whether a label value of values has a character
// the text format escapes.
func needsEscaping(values ...string) bool { return anyByte(values, false) }

// plainASCII reports whether values are all ASCII with no character the
// text format escapes: valid label values, written as they are.
func plainASCII(values ...string) bool { return !anyByte(values, true) }

// anyByte reports whether values have a byte the text format escapes, or
// with nonASCII one of 0x80 and above. It runs on every string of every
// agent, so it checks eight bytes at a time.
func anyByte(values []string, nonASCII bool) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	hasByte := func(x, c uint64) bool { // has a byte equal to c
		y := x ^ (c * ones)
		return (y-ones)&^y&highs != 0
	}
	var high uint64
	if nonASCII {
		high = highs
	}
	for _, v := range values {
		i := 0
		for ; i+8 <= len(v); i += 8 {
			x := binary.LittleEndian.Uint64([]byte(v[i : i+8]))
			if x&high != 0 || hasByte(x, '\\') || hasByte(x, '"') || hasByte(x, '\n') {
				return true
			}
		}
		for ; i < len(v); i++ {
			if c := v[i]; c == '\\' || c == '"' || c == '\n' || (nonASCII && c >= 0x80) {
				return true
			}
		}
	}
	return false
}

// value ends a series, formatting v as expfmt does.
func (t *textWriter) value(v float64) {
	t.buf = append(t.buf, '}', ' ')
	switch {
	case v == 0: // also -0
		t.buf = append(t.buf, '0')
	case math.IsNaN(v):
		t.buf = append(t.buf, "NaN"...)
	case math.IsInf(v, +1):
		t.buf = append(t.buf, "+Inf"...)
	case math.IsInf(v, -1):
		t.buf = append(t.buf, "-Inf"...)
	default:
		t.buf = strconv.AppendFloat(t.buf, v, 'g', -1, 64)
	}
	t.endSeries()
}

// unixMillis ends a series with ms as Unix seconds, the value unixSeconds
// gives (float64(ms)/1000), written as a decimal: 1764417600.123. That
// parses to the same float64 (both are the nearest to ms/1000, since ms
// is exact in a float64), and costs a fraction of the shortest form
// expfmt writes, 1.764417600123e+09.
func (t *textWriter) unixMillis(ms int64) {
	if ms < 0 || ms >= 1<<53 {
		t.value(float64(ms) / 1000)
		return
	}
	t.buf = append(t.buf, '}', ' ')
	t.buf = strconv.AppendInt(t.buf, ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		digits := 3
		for frac%10 == 0 {
			frac /= 10
			digits--
		}
		t.buf = append(t.buf, '.')
		switch {
		case digits == 3 && frac < 10:
			t.buf = append(t.buf, '0', '0')
		case digits == 3 && frac < 100, digits == 2 && frac < 10:
			t.buf = append(t.buf, '0')
		}
		t.buf = strconv.AppendInt(t.buf, frac, 10)
	}
	t.endSeries()
}

// endSeries ends the line, and writes the text out once it nears
// textBufferSize.
func (t *textWriter) endSeries() {
	t.buf = append(t.buf, '\n')
	if len(t.buf) >= textBufferSize-4096 {
		_ = t.flush()
	}
}

func (t *textWriter) flush() error {
	if t.err == nil && len(t.buf) > 0 {
		_, t.err = t.w.Write(t.buf)
	}
	t.buf = t.buf[:0]
	return t.err
}

// appendEscaped escapes as the text format wants: backslash and line feed
// always, the double quote in label values.
func appendEscaped(buf []byte, s string, quote bool) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch c := s[i]; {
		case c == '\\':
			esc = `\\`
		case c == '\n':
			esc = `\n`
		case c == '"' && quote:
			esc = `\"`
		default:
			continue
		}
		buf = append(buf, s[start:i]...)
		buf = append(buf, esc...)
		start = i + 1
	}
	return append(buf, s[start:]...)
}
