package collector_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
	"github.com/buildkite-exporter/buildkite_exporter/internal/benchtable"
)

// benchExporter starts the fake with a benchtable.Fleet of n agents (0 ms
// latency, answers replayed so that the fake's own page building stays out
// of the numbers) and an exporter on it, with the flags' defaults.
func benchExporter(b *testing.B, n int, replay, details bool, minInterval time.Duration) *collector.Exporter {
	b.Helper()
	srv := benchtable.NewServer(n, replay)
	b.Cleanup(srv.Close)
	api, err := client.New(client.Config{BaseURL: srv.URL, Token: client.StaticToken(benchtable.Token)})
	if err != nil {
		b.Fatal(err)
	}
	e, err := collector.New(api, collector.Config{
		Organizations: []string{benchtable.Org}, AgentDetails: details, DepartureLookups: 10,
		QueueRetention: 24 * time.Hour, AgentRetention: time.Hour, MinInterval: minInterval, Timeout: time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	// Warm up: connections open, replay recorded, memory of the fleet set.
	for _, s := range e.Collection(context.Background()) {
		if !s.OK() || len(s.Agents) != n {
			b.Fatalf("warm-up: %v, %d agents", s.Err, len(s.Agents))
		}
	}
	return e
}

// writeMetrics does what /metrics does (uncompressed): the scrape's
// collection, gather and text encoding, then the per-agent families as
// text.
func writeMetrics(b *testing.B, e *collector.Exporter, w io.Writer) {
	reg := prometheus.NewRegistry()
	sc := e.Scrape(context.Background())
	reg.MustRegister(sc)
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := collector.WriteText(bw, reg, sc); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// perAgent reports the process's CPU time (user plus system, from
// getrusage: wall time is unreliable on a shared machine) per operation and
// per 1,000 agents. The in-process fake's share is included.
func perAgent(b *testing.B, n int, cpu0 time.Duration) {
	cpu := float64(benchtable.CPUTime()-cpu0) / float64(b.N) / 1e6
	b.ReportMetric(cpu, "cpu-ms/op")
	b.ReportMetric(cpu/float64(n)*1000, "cpu-ms/1k-agents")
}

// BenchmarkCollect10k is one collection of 10,000 agents: 100 pages listed
// by the client (8 at once) and decoded, then the snapshot the collector
// builds (views, sort, memory of the fleet, fleet counts). No exposition.
func BenchmarkCollect10k(b *testing.B) {
	for _, mode := range []struct {
		name   string
		replay bool
	}{{"replay", true}, {"fake", false}} {
		b.Run(mode.name, func(b *testing.B) {
			const n = 10000
			e := benchExporter(b, n, mode.replay, true, 0)
			ctx := context.Background()
			b.ReportAllocs()
			cpu0 := benchtable.CPUTime()
			for b.Loop() {
				if s := e.Collection(ctx)[0]; !s.OK() || len(s.Agents) != n {
					b.Fatal(s.Err, len(s.Agents))
				}
			}
			perAgent(b, n, cpu0)
		})
	}
}

// BenchmarkScrape10k is a whole /metrics answer at 10,000 agents: the
// collection plus gathering and text encoding.
func BenchmarkScrape10k(b *testing.B) { benchWriteMetrics10k(b, 0) }

// BenchmarkExposition10k is the time to write /metrics at 10,000 agents
// once the collection is done: the snapshot comes from memory
// (--collector.min-interval), so only metric construction, gathering and
// text encoding are measured.
func BenchmarkExposition10k(b *testing.B) { benchWriteMetrics10k(b, time.Hour) }

func benchWriteMetrics10k(b *testing.B, minInterval time.Duration) {
	for _, details := range []bool{true, false} {
		name := "details"
		if !details {
			name = "no-details"
		}
		b.Run(name, func(b *testing.B) {
			const n = 10000
			scrapes(b, n, benchExporter(b, n, true, details, minInterval))
		})
	}
}

// scrapes writes /metrics of e in the benchmark's loop and reports the CPU
// per 1,000 of its n agents and the bytes written.
func scrapes(b *testing.B, n int, e *collector.Exporter) {
	var w countingWriter
	b.ReportAllocs()
	cpu0 := benchtable.CPUTime()
	for b.Loop() {
		w.n = 0
		writeMetrics(b, e, &w)
	}
	perAgent(b, n, cpu0)
	b.ReportMetric(float64(w.n), "bytes/scrape")
}

// memoryAPI lists agents by decoding page bodies held in memory, one after
// another, with the client's decoder: what a scrape costs the exporter
// besides HTTP (the "decode plus metric construction").
type memoryAPI struct {
	pages    [][]byte
	reversed bool // list the agents last first (not in ID order)
}

func (m *memoryAPI) ListAgents(context.Context, string, client.ListOptions) (*client.AgentList, error) {
	list := &client.AgentList{Pages: len(m.pages), Agents: make([]client.Agent, 0, 100*len(m.pages))}
	for _, p := range m.pages {
		agents, _, err := client.DecodeAgents(p)
		if err != nil {
			return nil, err
		}
		list.Agents = append(list.Agents, agents...)
	}
	if m.reversed {
		slices.Reverse(list.Agents)
	}
	return list, nil
}

func (m *memoryAPI) GetAgent(_ context.Context, _, id string) (*client.Agent, int, error) {
	return nil, 0, fmt.Errorf("agent %s: not in memory", id)
}

func (m *memoryAPI) RateLimit(string) (client.RateLimit, bool) { return client.RateLimit{}, false }

// fleetPages fetches the n-agent fleet's list pages from the fake once.
func fleetPages(b *testing.B, n int) [][]byte {
	b.Helper()
	srv := benchtable.NewServer(n, false)
	defer srv.Close()
	var pages [][]byte
	for page := 1; page <= (n+99)/100; page++ {
		req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/organizations/%s/agents?per_page=100&page=%d", srv.URL, benchtable.Org, page), nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+benchtable.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("page %d: %v %s", page, err, resp.Status)
		}
		pages = append(pages, body)
	}
	return pages
}

// BenchmarkDecodeAndExpose10k is a scrape of 10,000 agents without the
// network: the 100 pages decoded from memory, the snapshot built, and
// /metrics written with per-agent details (uncompressed). The fake lists
// agents in ID order; reversed, the snapshot has to sort them.
func BenchmarkDecodeAndExpose10k(b *testing.B) {
	const n = 10000
	pages := fleetPages(b, n)
	for _, reversed := range []bool{false, true} {
		name := "id-order"
		if reversed {
			name = "reversed"
		}
		b.Run(name, func(b *testing.B) {
			e := memoryExporter(b, &memoryAPI{pages: pages, reversed: reversed})
			scrapes(b, n, e)
			if s := e.Status()[0].Latest; !s.OK() || len(s.Agents) != n {
				b.Fatalf("%v, %d agents", s.Err, len(s.Agents))
			}
		})
	}
	// The collection alone: decode and snapshot, nothing written.
	b.Run("no-write", func(b *testing.B) {
		e := memoryExporter(b, &memoryAPI{pages: pages})
		b.ReportAllocs()
		cpu0 := benchtable.CPUTime()
		for b.Loop() {
			if s := e.Collection(context.Background())[0]; !s.OK() || len(s.Agents) != n {
				b.Fatalf("%v, %d agents", s.Err, len(s.Agents))
			}
		}
		perAgent(b, n, cpu0)
	})
}

// memoryExporter is an exporter with the flags' defaults on api, after one
// scrape: the fleet's memory in its steady state.
func memoryExporter(b *testing.B, api collector.AgentAPI) *collector.Exporter {
	e, err := collector.New(api, collector.Config{
		Organizations: []string{benchtable.Org}, AgentDetails: true, DepartureLookups: 10,
		QueueRetention: 24 * time.Hour, AgentRetention: time.Hour, Timeout: time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	writeMetrics(b, e, io.Discard)
	return e
}
