package collector

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
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

// shared runs collect once for all concurrent callers with the same key.
// The collection serves every waiting scrape, so one scrape that goes away
// must not cancel it; it runs detached from ctx's cancellation but bounded
// by ctx's deadline, or by timeout when ctx has none (wall-clock time,
// whatever clock the caller injects). ok is false when ctx ended while it
// waited for a collection that another, longer scrape started.
func shared[S any](ctx context.Context, group *singleflight.Group, key string, timeout time.Duration, collect func(context.Context) S) (s S, ok bool) {
	ch := group.DoChan(key, func() (any, error) {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		if deadline, has := ctx.Deadline(); has {
			cancel()
			cctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), deadline)
		}
		defer cancel()
		return collect(cctx), nil
	})
	select {
	case r := <-ch:
		return r.Val.(S), true
	case <-ctx.Done():
		return s, false
	}
}
