package collector_test

// Load and soak: many concurrent scrapes share collections and leave no
// goroutines behind; thousands of collections of a churning fleet keep the
// heap, the goroutines and the exporter's memory of departed agents and
// queues bounded by the retention settings.
//
// The CI variant is short. A long soak:
//
//	SOAK_COLLECTIONS=200000 go test -run '^TestSoak$' -count=1 -timeout 60m -v ./collector/

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// drain writes one scrape of e, bound to ctx, as /metrics does, and
// returns the number of series written.
func drain(ctx context.Context, e *collector.Exporter) int {
	scrape := e.Scrape(ctx)
	reg := prometheus.NewRegistry()
	reg.MustRegister(scrape)
	var text bytes.Buffer
	_ = collector.WriteText(&text, reg, scrape) // what was gathered is written either way
	n := 0
	for line := range bytes.Lines(text.Bytes()) {
		if line[0] != '#' {
			n++
		}
	}
	return n
}

// settledGoroutines waits for goroutines to wind down to at most want and
// returns the count.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(3 * time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(20 * time.Millisecond)
	}
	return n
}

// 100 scrapes at once through the real client and the fake over HTTP:
// they share collections (singleflight), so the API sees a handful of
// requests, and no goroutine outlives them.
func TestConcurrentCollect100(t *testing.T) {
	// The collections the hanging API holds end at this bound, whatever
	// the scrapes' deadlines.
	const timeout = 2 * time.Second
	fe := newFaultEnv(t, func(_ *client.Config, c *collector.Config) { c.Timeout = timeout })
	fe.fleet(fleetSize)
	drain(context.Background(), fe.exporter) // warm: connections open, memory filled
	slow := fe.fake.InjectFault(buildkitetest.Fault{Delay: 100 * time.Millisecond})
	before := runtime.NumGoroutine()
	requests := fe.requests()

	var wg sync.WaitGroup
	start := make(chan struct{})
	counts := make([]int, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			counts[i] = drain(context.Background(), fe.exporter)
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)

	// One collection is 3 pages; the 100 scrapes arrive within
	// microseconds of each other, far inside the first collection's 200ms.
	if n := fe.requests() - requests; n > 6 {
		t.Errorf("100 concurrent scrapes made %d API requests, want at most 6 (shared collections of 3 pages)", n)
	}
	for i, n := range counts {
		if n != counts[0] {
			t.Errorf("scrape %d got %d metrics, scrape 0 got %d", i, n, counts[0])
			break
		}
	}
	if took > 30*time.Second {
		t.Errorf("100 concurrent scrapes took %v", took)
	}
	if after := settledGoroutines(before + 5); after > before+5 {
		t.Errorf("goroutines: %d before, %d after 100 concurrent scrapes", before, after)
	}

	// And when the API hangs past the scrapes' deadlines: they all answer
	// by their deadline; the one collection they share ends at Timeout,
	// and nothing is left behind.
	slow()
	fe.fake.InjectFault(buildkitetest.Fault{Delay: 30 * time.Second})
	fe.clock.Advance(time.Minute)
	before = runtime.NumGoroutine()
	requests = fe.requests()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	began = time.Now()
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drain(ctx, fe.exporter)
		}()
	}
	wg.Wait()
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("100 scrapes bound to 300ms took %v against a hanging API", took)
	}
	if n := fe.requests() - requests; n > 1 {
		t.Errorf("100 scrapes of a hanging API made %d requests, want 1 (page 1 hangs)", n)
	}
	// A scrape without a deadline of its own waits for the collection in
	// progress (or one more), which fails at Timeout.
	drain(context.Background(), fe.exporter)
	if n := len(fe.logs.lines(msgFailed)); n != 1 {
		t.Errorf("the shared collection logged %d failures by its end, want 1:\n%s", n, fe.logs.String())
	}
	if after := settledGoroutines(before + 5); after > before+5 {
		t.Errorf("goroutines: %d before, %d after 100 scrapes of a hanging API", before, after)
	}
}

// churnAPI is an in-memory Buildkite for the soak: fast, deterministic,
// and able to fail now and then.
type churnAPI struct {
	mu     sync.Mutex
	listed map[string]client.Agent // connected and stopping
	gone   map[string]string       // id -> the state Get reports; "" = 404
	fail   bool
}

func (c *churnAPI) ListAgents(ctx context.Context, org string, _ client.ListOptions) (*client.AgentList, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return nil, fmt.Errorf("GET /organizations/%s/agents: %w", org, client.ErrServer)
	}
	list := &client.AgentList{Pages: 1}
	for _, a := range c.listed {
		list.Agents = append(list.Agents, a)
	}
	sort.Slice(list.Agents, func(i, j int) bool { return list.Agents[i].ID < list.Agents[j].ID })
	return list, nil
}

func (c *churnAPI) GetAgent(ctx context.Context, org, id string) (*client.Agent, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.listed[id]; ok {
		return &a, 1, nil
	}
	if st, ok := c.gone[id]; ok && st != "" {
		return &client.Agent{ID: id, ConnectionState: st}, 1, nil
	}
	return nil, 1, fmt.Errorf("GET agent %s: %w", id, client.ErrNotFound)
}

func (c *churnAPI) RateLimit(string) (client.RateLimit, bool) {
	return client.RateLimit{Limit: 200, Remaining: 150, Reset: 30}, true
}

// soakModel is what the exporter should remember, worked out
// independently: when each agent and queue was last seen in a successful
// listing.
type soakModel struct {
	present       map[string][]string  // id -> queues, as of the last successful listing
	lastSeen      map[string]time.Time // id -> last successful listing that had it
	departed      map[string]time.Time // id -> lastSeen, for agents that left
	queueLastSeen map[string]time.Time
}

func (m *soakModel) listed(agents []client.Agent, now time.Time) {
	current := map[string][]string{}
	for _, a := range agents {
		qs := queuesOf(a)
		current[a.ID] = qs
		m.lastSeen[a.ID] = now
		for _, q := range qs {
			m.queueLastSeen[q] = now
		}
	}
	for id := range m.present {
		if _, ok := current[id]; !ok {
			m.departed[id] = m.lastSeen[id]
			delete(m.lastSeen, id)
		}
	}
	m.present = current
}

// expected returns the departed agents and known queues at now.
func (m *soakModel) expected(now time.Time, agentRetention, queueRetention time.Duration) (departed, queues int) {
	for id, seen := range m.departed {
		if now.Sub(seen) <= agentRetention {
			departed++
		} else {
			delete(m.departed, id)
		}
	}
	for q, seen := range m.queueLastSeen {
		if now.Sub(seen) <= queueRetention {
			queues++
		} else {
			delete(m.queueLastSeen, q)
		}
	}
	return departed, queues
}

func queuesOf(a client.Agent) []string {
	if a.Queue != "" {
		return []string{a.Queue}
	}
	var qs []string
	for _, md := range a.MetaData {
		if len(md) > 6 && md[:6] == "queue=" {
			qs = append(qs, md[6:])
		}
	}
	if len(qs) == 0 {
		return []string{"default"}
	}
	return qs
}

func soakCollections(t *testing.T) int {
	if s := os.Getenv("SOAK_COLLECTIONS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 100 {
			t.Fatalf("SOAK_COLLECTIONS=%q: want a number of at least 100", s)
		}
		return n
	}
	if testing.Short() {
		return 300
	}
	return 1000
}

// TestSoak: a fleet churns for thousands of collections, one simulated
// minute apart. Agents join and leave in every state Buildkite reports,
// queues appear and vanish, listings fail now and then. The exporter's
// memory must track the retention settings exactly, and heap and
// goroutines stay flat.
func TestSoak(t *testing.T) {
	const (
		agentRetention = time.Hour
		queueRetention = 2 * time.Hour
	)
	n := soakCollections(t)
	clock := buildkitetest.NewClock(epoch)
	api := &churnAPI{listed: map[string]client.Agent{}, gone: map[string]string{}}
	exporter, err := collector.New(api, collector.Config{
		Organizations: []string{"acme"}, AgentDetails: true, DepartureLookups: 5,
		Queues: []string{"always"}, Tags: []string{"size"},
		QueueRetention: queueRetention, AgentRetention: agentRetention,
		Timeout: 10 * time.Second, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	model := &soakModel{present: map[string][]string{}, lastSeen: map[string]time.Time{},
		departed: map[string]time.Time{}, queueLastSeen: map[string]time.Time{}}
	rng := rand.New(rand.NewPCG(1, 2))
	states := []string{"stopped", "lost", "disconnected", "", "never_connected"}
	nextID := 0

	var baseHeap uint64
	var baseGoroutines int
	warmup := n / 5
	maxDeparted, maxQueues := 0, 0
	for step := range n {
		// Queues roll: every 100 minutes a new one opens and the oldest
		// stops getting agents, so queues keep appearing and vanishing.
		generation := step / 100
		api.mu.Lock()
		for range rng.IntN(3) {
			nextID++
			q := fmt.Sprintf("q%d", generation+rng.IntN(3))
			a := client.Agent{
				ID: fmt.Sprintf("agent-%07d", nextID), Name: fmt.Sprintf("n-%d", nextID), ConnectionState: "connected",
				Hostname: fmt.Sprintf("h-%d", nextID), Version: fmt.Sprintf("3.%d.0", rng.IntN(4)),
				MetaData:  []string{"size=" + []string{"s", "m", "l"}[rng.IntN(3)]},
				CreatedAt: clock.Now(),
			}
			if rng.IntN(4) == 0 { // several queues from tags
				a.MetaData = append(a.MetaData, "queue="+q, fmt.Sprintf("queue=q%d", generation+rng.IntN(3)))
			} else {
				a.Queue = q
			}
			if rng.IntN(3) == 0 {
				a.Job = &client.Job{ID: "j", State: "running", StartedAt: clock.Now()}
			}
			api.listed[a.ID] = a
		}
		for id, a := range api.listed {
			// Agents of old generations leave faster, so their queues empty.
			p := 0.02
			if len(a.Queue) > 1 && a.Queue != fmt.Sprintf("q%d", generation) && step%100 > 50 {
				p = 0.1
			}
			switch r := rng.Float64(); {
			case r < p:
				delete(api.listed, id)
				api.gone[id] = states[rng.IntN(len(states))]
			case r < p+0.01 && a.ConnectionState == "connected":
				a.ConnectionState = "stopping"
				api.listed[id] = a
			}
		}
		api.fail = step%97 == 96 // a failed listing now and then
		var listing []client.Agent
		if !api.fail {
			for _, a := range api.listed {
				listing = append(listing, a)
			}
		}
		// Get of agents long gone is forgotten (Buildkite answers 404).
		if len(api.gone) > 5000 {
			clear(api.gone)
		}
		failing := api.fail
		api.mu.Unlock()

		clock.Advance(time.Minute)
		if !failing {
			model.listed(listing, clock.Now())
		}
		sample := step%50 == 0 || step == n-1
		if !sample {
			drain(context.Background(), exporter)
			continue
		}
		fams := families(t, exporter)
		if got := sum(fams, "buildkite_up"); got != map[bool]float64{true: 0, false: 1}[failing] {
			t.Fatalf("step %d: buildkite_up = %v (failing %v)", step, got, failing)
		}
		wantDeparted, wantQueues := model.expected(clock.Now(), agentRetention, queueRetention)
		if got := series(fams, "buildkite_agent_departed_timestamp_seconds"); got != wantDeparted {
			t.Fatalf("step %d: %d departed-agent series, want %d (agent retention %v)", step, got, wantDeparted, agentRetention)
		}
		queues := map[string]bool{}
		for _, name := range []string{"buildkite_agents", "buildkite_agent_departures_total"} {
			for _, m := range fams[name].GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetName() == "queue" {
						queues[lp.GetValue()] = true
					}
				}
			}
		}
		if !failing && len(queues) != wantQueues+1 { // + the configured queue
			t.Fatalf("step %d: %d queue labels, want %d known + 1 configured", step, len(queues), wantQueues)
		}
		if failing && len(queues) > wantQueues+1 {
			t.Fatalf("step %d (failed listing): %d queue labels, more than the %d known + 1", step, len(queues), wantQueues)
		}
		maxDeparted, maxQueues = max(maxDeparted, wantDeparted), max(maxQueues, len(queues))

		if step >= warmup && baseHeap == 0 {
			baseHeap, baseGoroutines = heapAfterGC(), runtime.NumGoroutine()
		}
	}
	finalHeap, finalGoroutines := heapAfterGC(), runtime.NumGoroutine()
	t.Logf("%d collections: heap %d KiB after warm-up, %d KiB at the end; goroutines %d -> %d; at most %d departed agents and %d queue labels exposed",
		n, baseHeap>>10, finalHeap>>10, baseGoroutines, finalGoroutines, maxDeparted, maxQueues)
	if finalHeap > baseHeap+max(baseHeap/2, 4<<20) {
		t.Errorf("heap grew from %d KiB to %d KiB over the soak", baseHeap>>10, finalHeap>>10)
	}
	if finalGoroutines > baseGoroutines+2 {
		t.Errorf("goroutines grew from %d to %d over the soak", baseGoroutines, finalGoroutines)
	}
	if maxDeparted == 0 || maxQueues < 4 {
		t.Errorf("the soak did not churn: at most %d departed, %d queues", maxDeparted, maxQueues)
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// churnRounds lists rounds of agents, each round a new set of n IDs (the
// previous round's all leave), one simulated minute apart, and returns the
// exporter and its last snapshot.
func churnRounds(t *testing.T, cfg collector.Config, rounds, n int) (*collector.Exporter, *collector.Snapshot) {
	t.Helper()
	clock := buildkitetest.NewClock(epoch)
	api := &churnAPI{listed: map[string]client.Agent{}, gone: map[string]string{}}
	cfg.Organizations, cfg.Now, cfg.Timeout = []string{"acme"}, clock.Now, time.Minute
	cfg.AgentRetention, cfg.QueueRetention = time.Hour, time.Hour
	exporter, err := collector.New(api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var s *collector.Snapshot
	for round := range rounds {
		api.mu.Lock()
		clear(api.listed)
		for i := range n {
			id := fmt.Sprintf("r%d-%05d", round, i)
			api.listed[id] = client.Agent{ID: id, Name: id, ConnectionState: "connected", Queue: "q"}
		}
		api.mu.Unlock()
		clock.Advance(time.Minute)
		s = exporter.Collection(context.Background())[0]
		if !s.OK() {
			t.Fatal(s.Err)
		}
	}
	return exporter, s
}

// A fleet that churns faster than --collector.agent-retention forgets:
// the departed agents kept are capped by count, the oldest dropped first.
func TestDepartedAgentsCapped(t *testing.T) {
	exporter, s := churnRounds(t, collector.Config{MaxDepartedAgents: 50, AgentDetails: true}, 5, 40)
	// Rounds 0 to 3 left (160 agents); the newest 50 are round 3's 40 and
	// 10 of round 2's (of equal age, the lowest IDs go first).
	if len(s.Departed) != 50 {
		t.Fatalf("%d departed agents kept, want 50", len(s.Departed))
	}
	rounds := map[byte]int{}
	for _, d := range s.Departed {
		rounds[d.ID[1]]++
	}
	if rounds['3'] != 40 || rounds['2'] != 10 || s.Departed[49].ID != "r2-00039" || s.Departed[40].ID != "r2-00030" {
		t.Errorf("kept %v by round (want round 3: 40, round 2: 10), last %s", rounds, s.Departed[len(s.Departed)-1].ID)
	}
	if got := series(families(t, exporter), "buildkite_agent_departed_timestamp_seconds"); got != 50 {
		t.Errorf("%d departed-agent series, want 50", got)
	}

	// By default at most 10,000: 12,000 agents left here within the hour.
	_, s = churnRounds(t, collector.Config{}, 3, 6000)
	if len(s.Departed) != 10000 {
		t.Errorf("%d departed agents kept by default, want 10,000", len(s.Departed))
	}
}
