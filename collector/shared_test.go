package collector_test

// Shared collections: one scrape's deadline must not reach the collection
// others wait for, and scrapes that wait on a collection in progress are
// logged once per change.

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/agentmetrics"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

const (
	msgWaiting   = `msg="scrapes are waiting for a collection in progress"`
	msgNoWaiting = `msg="scrapes no longer wait for a collection in progress"`
)

// gate holds every call until the test releases it: arrived gets a value
// when a call is held, release lets one through. A call whose context
// ends first returns the context's error, as the real clients do.
type gate struct {
	arrived chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func newGate() *gate {
	return &gate{arrived: make(chan struct{}, 16), release: make(chan struct{}, 16)}
}

func (g *gate) pass(ctx context.Context) error {
	g.calls.Add(1)
	g.arrived <- struct{}{}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedAgents lists one connected agent once the gate lets it.
type gatedAgents struct{ *gate }

func (g gatedAgents) ListAgents(ctx context.Context, org string, _ client.ListOptions) (*client.AgentList, error) {
	if err := g.pass(ctx); err != nil {
		return nil, err
	}
	return &client.AgentList{Pages: 1, Agents: []client.Agent{{ID: "a1", Name: "a1", ConnectionState: "connected", Queue: "build"}}}, nil
}

func (gatedAgents) GetAgent(ctx context.Context, org, id string) (*client.Agent, int, error) {
	return nil, 1, client.ErrNotFound
}

func (gatedAgents) RateLimit(string) (client.RateLimit, bool) { return client.RateLimit{}, false }

// gatedMetrics answers the Agent Metrics API once the gate lets it.
type gatedMetrics struct{ *gate }

func (g gatedMetrics) Metrics(ctx context.Context) (*agentmetrics.Metrics, error) {
	if err := g.pass(ctx); err != nil {
		return nil, err
	}
	return &agentmetrics.Metrics{Organization: "acme", Cluster: "linux"}, nil
}

func debugLogger(buf *lockedBuffer) log.Logger {
	return level.NewFilter(log.NewLogfmtLogger(buf), level.AllowDebug())
}

// expiredContext is a scrape whose deadline has passed: it waits for
// nothing.
func expiredContext(t *testing.T) context.Context {
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	t.Cleanup(cancel)
	return ctx
}

func longContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// A scrape with (almost) no time left starts a collection and gives up
// on it at once. The collection goes on, bounded by Config.Timeout only,
// and serves the next scrape; the first scrape's failure is never kept,
// not even within --collector.min-interval.
func TestScrapeDeadlineNotImposedOnTheCollection(t *testing.T) {
	g := newGate()
	clock := buildkitetest.NewClock(epoch)
	e, err := collector.New(gatedAgents{g}, collector.Config{
		Organizations: []string{"acme"}, MinInterval: time.Minute, Timeout: time.Minute, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := e.Collection(expiredContext(t))[0]
	if s.OK() || !strings.Contains(s.Err.Error(), "waiting for a collection in progress") {
		t.Errorf("the impatient scrape got %v, want its own 'waiting for a collection in progress' failure", s.Err)
	}
	<-g.arrived // the collection it started is under way
	g.release <- struct{}{}
	s = e.Collection(longContext(t))[0]
	if !s.OK() || len(s.Agents) != 1 {
		t.Fatalf("the patient scrape got %v with %d agents, want the fleet", s.Err, len(s.Agents))
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("%d listings, want 1: the collection the first scrape started serves the second", n)
	}
	if latest := e.Status()[0].Latest; latest == nil || !latest.OK() {
		t.Errorf("the status keeps %+v, want the successful collection", latest)
	}
}

// The same for the Agent Metrics API.
func TestScrapeDeadlineNotImposedOnThePoll(t *testing.T) {
	g := newGate()
	clock := buildkitetest.NewClock(epoch)
	e, err := collector.NewJobsExporter([]collector.JobsSource{{Name: "t", API: gatedMetrics{g}}}, collector.JobsConfig{
		MinInterval: time.Minute, Timeout: time.Minute, Now: clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := e.Collection(expiredContext(t))[0]
	if s.OK() || !strings.Contains(s.Err.Error(), "waiting for a poll in progress") {
		t.Errorf("the impatient scrape got %v, want its own 'waiting for a poll in progress' failure", s.Err)
	}
	<-g.arrived
	g.release <- struct{}{}
	s = e.Collection(longContext(t))[0]
	if !s.OK() || s.Organization != "acme" {
		t.Fatalf("the patient scrape got %v (organization %q), want the answer", s.Err, s.Organization)
	}
	if n := g.calls.Load(); n != 1 {
		t.Errorf("%d polls, want 1", n)
	}
	if latest := e.Latest()[0]; latest == nil || !latest.OK() {
		t.Errorf("the memory keeps %+v, want the successful poll", latest)
	}
}

// Scrapes that find a collection in progress and wait on it are logged at
// debug level once when it starts happening and once when it stops, not
// once per scrape.
func TestWaitingOnACollectionLoggedOncePerChange(t *testing.T) {
	g := newGate()
	logs := &lockedBuffer{}
	clock := buildkitetest.NewClock(epoch)
	e, err := collector.New(gatedAgents{g}, collector.Config{
		Organizations: []string{"acme"}, Timeout: time.Minute, Now: clock.Now, Logger: debugLogger(logs),
	})
	if err != nil {
		t.Fatal(err)
	}
	// round runs one collection; with a joiner, a second scrape arrives
	// while it is held and waits on it (until its own, passed, deadline).
	round := func(joiner bool) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Collection(longContext(t))
		}()
		<-g.arrived
		if joiner {
			if s := e.Collection(expiredContext(t))[0]; s.OK() {
				t.Error("a scrape past its deadline got a collection")
			}
		}
		g.release <- struct{}{}
		wg.Wait()
		clock.Advance(time.Minute)
	}
	for _, step := range []struct {
		joiner            bool
		waiting, noLonger int // lines so far
	}{
		{true, 1, 0}, {true, 1, 0}, {true, 1, 0}, {false, 1, 1}, {false, 1, 1}, {true, 2, 1},
	} {
		round(step.joiner)
		waiting, noLonger := logs.lines(msgWaiting), logs.lines(msgNoWaiting)
		if len(waiting) != step.waiting || len(noLonger) != step.noLonger {
			t.Fatalf("after a round (joiner %v): %d waiting and %d no-longer lines, want %d and %d:\n%s",
				step.joiner, len(waiting), len(noLonger), step.waiting, step.noLonger, logs.String())
		}
		for _, l := range append(waiting, noLonger...) {
			if !strings.Contains(l, "level=debug") || !strings.Contains(l, "organization=acme") {
				t.Errorf("want a debug line naming the organization: %s", l)
			}
		}
	}
}
