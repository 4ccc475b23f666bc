package collector

import (
	"context"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// concurrently runs fn on every item at once and returns the results in
// the items' order.
func concurrently[T, R any](items []T, fn func(T) R) []R {
	out := make([]R, len(items))
	var wg sync.WaitGroup
	for i, item := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = fn(item)
		}()
	}
	wg.Wait()
	return out
}

// flightGroup runs at most one collection per key at a time: scrapes that
// arrive while one is in progress wait for it rather than start another.
// The zero value is ready to use.
type flightGroup struct {
	mu      sync.Mutex
	running map[string]*flight
	// waiting: the key's latest collection had scrapes waiting on it,
	// so that the debug log says so once per change, not per scrape.
	waiting map[string]bool
}

// flight is one collection in progress; result is set when done closes.
type flight struct {
	done   chan struct{}
	result any
	joined int // scrapes that found it in progress
}

// join returns the key's collection in progress, or a new one that the
// caller must run (started). startWaiting is true for the first scrape
// that waits on a collection since the last one nobody waited on.
func (g *flightGroup) join(key string) (f *flight, started, startWaiting bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.running[key]; f != nil {
		f.joined++
		startWaiting = !g.waiting[key]
		if startWaiting {
			if g.waiting == nil {
				g.waiting = map[string]bool{}
			}
			g.waiting[key] = true
		}
		return f, false, startWaiting
	}
	if g.running == nil {
		g.running = map[string]*flight{}
	}
	f = &flight{done: make(chan struct{})}
	g.running[key] = f
	return f, true, false
}

// finish publishes f's result to its waiters. stopWaiting is true when
// nobody waited on f after scrapes had waited on earlier collections.
func (g *flightGroup) finish(key string, f *flight, result any) (stopWaiting bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.running, key)
	f.result = result
	close(f.done)
	if f.joined == 0 && g.waiting[key] {
		delete(g.waiting, key)
		return true
	}
	return false
}

// shared runs collect once for all concurrent callers with the same key.
//
// The collection serves every scrape that waits on it, so it is bounded
// only by timeout (the exporter's own limit, --buildkite.timeout), never by
// one scrape's deadline or cancellation: a scrape with a short deadline
// must not fail the collection, nor have its failure cached, for scrapes
// with time to spare. Each caller waits at most until its own ctx ends;
// ok is false when it gave up first. The collection then goes on, and a
// later scrape may join it.
//
// logger hears, at debug level, when scrapes start waiting on collections
// in progress and when they stop; keyvals name the key in those lines.
func shared[S any](ctx context.Context, group *flightGroup, key string, timeout time.Duration, logger log.Logger, keyvals []any,
	collect func(context.Context) S) (s S, ok bool) {
	f, started, startWaiting := group.join(key)
	switch {
	case started:
		// Detached from ctx's cancellation; its values are kept.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		go func() {
			defer cancel()
			if group.finish(key, f, collect(cctx)) {
				level.Debug(logger).Log(append([]any{"msg", "scrapes no longer wait for a collection in progress"}, keyvals...)...)
			}
		}()
	case startWaiting:
		level.Debug(logger).Log(append([]any{"msg", "scrapes are waiting for a collection in progress",
			"note", "a scrape arrived while another's collection ran; each waits at most its own deadline"}, keyvals...)...)
	}
	select {
	case <-f.done:
		return f.result.(S), true
	case <-ctx.Done():
		return s, false
	}
}
