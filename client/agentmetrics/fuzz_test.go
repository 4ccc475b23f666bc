package agentmetrics_test

import (
	"errors"
	"sort"
	"testing"
	"unicode/utf8"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/agentmetrics"
)

// FuzzDecodeMetrics: whatever the body, the decoder returns either an
// ErrMalformed or metrics that keep its promises (organization set, counts
// non-negative, queues sorted and distinct).
func FuzzDecodeMetrics(f *testing.F) {
	for _, seed := range []string{
		`{"agents":{"idle":1,"busy":2,"total":3,"queues":{"default":{"idle":1,"busy":2,"total":3}}},"jobs":{"scheduled":4,"running":2,"waiting":1,"total":7,"queues":{"default":{"scheduled":4,"running":2,"waiting":1,"total":7}}},"organization":{"slug":"acme"},"cluster":{"name":"linux"}}`,
		`{"organization":{"slug":"acme"},"cluster":null}`,
		`{"organization":{"slug":"a"},"jobs":{"queues":{"q":{"waiting":-1}}}}`,
		`{"organization":{"slug":"a"},"agents":{"queues":{"\xff":{"busy":1e3}}}}`,
		`{"organization":{"slug":"a"},"jobs":{"queues":{"":{"scheduled":9223372036854775807}}}}`,
		`[`, `{}`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := agentmetrics.DecodeMetrics(body)
		if err != nil {
			if !errors.Is(err, client.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if m.Organization == "" {
			t.Fatal("no organization, no error")
		}
		if !utf8.ValidString(m.Organization) || !utf8.ValidString(m.Cluster) {
			t.Fatal("invalid UTF-8 in names")
		}
		if !sort.SliceIsSorted(m.Queues, func(i, j int) bool { return m.Queues[i].Name < m.Queues[j].Name }) {
			t.Fatal("queues not sorted")
		}
		for i, q := range m.Queues {
			if i > 0 && m.Queues[i-1].Name == q.Name {
				t.Fatalf("queue %q twice", q.Name)
			}
			for _, v := range []int64{q.Agents.Idle, q.Agents.Busy, q.Agents.Total, q.Jobs.Scheduled, q.Jobs.Running, q.Jobs.Waiting, q.Jobs.Total} {
				if v < 0 {
					t.Fatalf("negative count in %+v", q)
				}
			}
		}
	})
}
