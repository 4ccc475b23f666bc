package graphql

import (
	"errors"
	"testing"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// FuzzDecode: the decoders never panic, fail only with ErrMalformed or
// ErrNotFound, and what they accept is complete.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"data":{"organization":{"clusters":{"edges":[{"node":{"uuid":"c1","name":"Linux","queues":{"edges":[{"node":{"uuid":"q1","key":"small","metrics":{"timestamp":"2026-12-01T10:00:00Z","jobsPassedCount":3,"jobsFailedCount":1,"waitTimeSec":{"min":0.5,"max":90,"p50":4,"p95":60}}}},{"node":{"uuid":"q2","key":"large","metrics":null}}],"pageInfo":{"hasNextPage":true,"endCursor":"abc"}}}},null,{"node":null}],"pageInfo":{"hasNextPage":false,"endCursor":null}}}}}`,
		`{"data":{"organization":{"cluster":{"queues":{"edges":[],"pageInfo":{"hasNextPage":false}}}}}}`,
		`{"data":{"organization":null}}`,
		`{"data":null}`,
		`{"data":{"organization":{"clusters":{"edges":[{"node":{"uuid":"c1","name":"x","queues":{"edges":[{"node":{"uuid":"q","key":"k","metrics":{"timestamp":"yesterday"}}}],"pageInfo":{"hasNextPage":false}}}}],"pageInfo":{"hasNextPage":true,"endCursor":""}}}}}`,
		`[]`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		page, err := decodeClustersPage(b)
		checkDecodeError(t, err)
		if err == nil {
			if page.next.more && page.next.cursor == "" {
				t.Error("more clusters without a cursor")
			}
			for _, c := range page.clusters {
				if c.cluster.UUID == "" {
					t.Error("a cluster without UUID")
				}
				checkQueues(t, c.cluster.Queues, c.next)
			}
		}
		queues, next, err := decodeQueuesPage(b)
		checkDecodeError(t, err)
		if err == nil {
			checkQueues(t, queues, next)
		}
	})
}

func checkDecodeError(t *testing.T, err error) {
	if err != nil && !errors.Is(err, client.ErrMalformed) && !errors.Is(err, client.ErrNotFound) {
		t.Errorf("error %v wraps neither ErrMalformed nor ErrNotFound", err)
	}
}

func checkQueues(t *testing.T, queues []Queue, next nextPage) {
	if next.more && next.cursor == "" {
		t.Error("more queues without a cursor")
	}
	for _, q := range queues {
		if q.UUID == "" {
			t.Error("a queue without UUID")
		}
	}
}
