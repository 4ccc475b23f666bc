package client_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/internal/benchtable"
)

// fakePage returns page 1 (100 agents) of a benchtable.Fleet as the fake
// API serves it: every field Buildkite sends, creator and job objects
// included.
func fakePage(b *testing.B) []byte {
	b.Helper()
	srv := benchtable.NewServer(100, false)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/organizations/"+benchtable.Org+"/agents?per_page=100", nil)
	req.Header.Set("Authorization", "Bearer "+benchtable.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatal(resp.Status, err)
	}
	return page
}

// BenchmarkDecodeFakePage decodes one page of 100 agents as the fake
// serves them.
func BenchmarkDecodeFakePage(b *testing.B) {
	page := fakePage(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		agents, _, err := client.DecodeAgents(page)
		if err != nil || len(agents) != 100 {
			b.Fatal(err, len(agents))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100, "ns/agent")
}

// BenchmarkListAgents10k lists 10,000 agents (100 pages, 8 at once) from
// the fake at 0 ms latency, its answers replayed.
func BenchmarkListAgents10k(b *testing.B) {
	const n = 10000
	srv := benchtable.NewServer(n, true)
	defer srv.Close()
	c, err := client.New(client.Config{BaseURL: srv.URL, Token: client.StaticToken(benchtable.Token)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.ListAgents(ctx, benchtable.Org, client.ListOptions{}); err != nil { // record the pages
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := benchtable.CPUTime()
	for b.Loop() {
		list, err := c.ListAgents(ctx, benchtable.Org, client.ListOptions{})
		if err != nil || len(list.Agents) != n {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchtable.CPUTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
}
