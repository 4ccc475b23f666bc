package status_test

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
	"github.com/buildkite-exporter/buildkite_exporter/status"
)

// Timestamps from Buildkite that no clock could mean: the page and its
// JSON still answer 200, and the times are left out. 1601 is older than a
// time.Duration reaches (the page used to recurse until the stack
// overflowed); the others are year -1 and 10000 once in UTC, which JSON
// cannot encode (the JSON used to answer 500).
func TestExtremeAgentTimes(t *testing.T) {
	for _, ts := range []string{
		"1601-01-01T00:00:00Z", "0000-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
		"0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
	} {
		t.Run(ts, func(t *testing.T) {
			e := newEnv(t, "acme")
			// Connected and never ran a job: idle since it connected.
			e.server.PutAgent("acme", buildkitetest.Agent{ID: "old", Name: "old", ConnectionState: "connected", Queue: "build",
				Extra: map[string]any{"connected_at": ts, "created_at": ts}})
			e.server.PutAgent("acme", buildkitetest.Agent{ID: "busy", Name: "busy", ConnectionState: "connected", Queue: "build",
				Extra: map[string]any{"last_job_finished_at": ts, "job": map[string]any{"id": "j", "state": "running", "started_at": ts}}})
			e.collect()
			getHTML(t, e.handler)
			page, _ := getJSON(t, e.handler)
			org := page.Organizations[0]
			if !org.OK || org.Agents.Listed != 2 {
				t.Fatalf("the collection failed or lost agents: %+v", org.Latest)
			}
			for _, ia := range org.LongestIdle {
				if ia.IdleSince != nil || ia.IdleSeconds != 0 {
					t.Errorf("idle since %v (%v s) from %s, want left out", ia.IdleSince, ia.IdleSeconds, ts)
				}
			}
			if len(org.LongestJobs) != 0 {
				t.Errorf("a job started at %s listed: %+v", ts, org.LongestJobs)
			}
		})
	}
}

// Whatever the collector hands over, however absurd its times, the page
// and its JSON answer 200.
func TestExtremeTimesInTheStatus(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(math.MaxInt64/2, 0), time.Unix(math.MinInt64/2, 0), {},
	} {
		t.Run(fmt.Sprint(tm.Year()), func(t *testing.T) {
			agents := []collector.AgentView{
				{Agent: client.Agent{ID: "i", Name: "idle", ConnectionState: "connected", ConnectedAt: tm}, Queues: []string{"q"}, QueueLabel: "q"},
				{Agent: client.Agent{ID: "j", Name: "job", ConnectionState: "connected", LastJobFinishedAt: tm,
					Job: &client.Job{ID: "job", State: "running", StartedAt: tm}}, Queues: []string{"q"}, QueueLabel: "q"},
			}
			s := &collector.Snapshot{Organization: "acme", Start: tm, End: epoch, Agents: agents, HasRateLimit: true,
				RateLimit: client.RateLimit{Limit: 1, Reset: math.MaxInt, ObservedAt: tm},
				Departed:  []collector.DepartedAgent{{ID: "d", Name: "d", State: "lost", At: tm, LastSeen: tm}}}
			failed := *s
			failed.Start, failed.End, failed.Err = tm, tm, context.DeadlineExceeded
			for _, snap := range []*collector.Snapshot{s, &failed} {
				source := func() []collector.OrgStatus {
					return []collector.OrgStatus{{Organization: "acme", Latest: snap, History: []collector.CollectionSummary{
						{Start: tm, End: tm, HasRateLimit: true, RateLimit: collector.RateLimitSummary{Reset: math.MinInt}},
						{Start: snap.Start, End: snap.End, Err: snap.Err}}}}
				}
				h := status.Handler(source, func() time.Time { return epoch })
				getHTML(t, h)
				getJSON(t, h)
			}
		})
	}
}

// churnAPI lists a new set of agents at each collection: the previous
// set has all left. Names and hostnames are long.
type churnAPI struct {
	mu     sync.Mutex
	round  int
	agents int
}

func (c *churnAPI) ListAgents(ctx context.Context, org string, _ client.ListOptions) (*client.AgentList, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.round++
	list := &client.AgentList{Pages: 1}
	for i := range c.agents {
		id := fmt.Sprintf("r%d-%05d", c.round, i)
		list.Agents = append(list.Agents, client.Agent{ID: id, Name: id + strings.Repeat("n", 3000),
			Hostname: id + strings.Repeat("h", 3000), ConnectionState: "connected", Queue: "q"})
	}
	return list, nil
}

func (c *churnAPI) GetAgent(ctx context.Context, org, id string) (*client.Agent, int, error) {
	return nil, 1, client.ErrNotFound
}

func (c *churnAPI) RateLimit(string) (client.RateLimit, bool) { return client.RateLimit{}, false }

// However fast the fleet churns, the page lists the 100 most recently
// departed agents with the total, and stays under 2 MB.
func TestDepartedListBounded(t *testing.T) {
	clock := buildkitetest.NewClock(epoch)
	exporter, err := collector.New(&churnAPI{agents: 2000}, collector.Config{
		Organizations: []string{"acme"}, AgentRetention: time.Hour, QueueRetention: time.Hour, Timeout: time.Minute, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clock.Advance(time.Minute)
		exporter.Collection(context.Background())
	}
	h := status.Handler(exporter.Status, clock.Now)
	html := get(t, h, http.MethodGet, "/status")
	js := get(t, h, http.MethodGet, "/status?format=json")
	for _, r := range []response{html, js} {
		if r.code != http.StatusOK || len(r.body) > 2<<20 {
			t.Errorf("%s: %d, %d bytes; want 200 under 2 MB", r.header.Get("Content-Type"), r.code, len(r.body))
		}
	}
	page, raw := getJSON(t, h)
	org := page.Organizations[0]
	if len(org.Departed) != status.DepartedShown || org.Departed[0].ID[:3] != "r2-" {
		t.Errorf("%d departed agents listed, the first %q; want the %d most recent (round 2)", len(org.Departed), org.Departed[0].ID, status.DepartedShown)
	}
	if got := raw["organizations"].([]any)[0].(map[string]any)["departed_total"]; got != float64(4000) {
		t.Errorf("departed_total = %v, want 4000", got)
	}
	if want := "the 100 most recent of 4000"; !strings.Contains(text(html.body), want) {
		t.Errorf("the page does not say %q", want)
	}
}
