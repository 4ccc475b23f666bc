package graphql

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// Operation names of queue_metrics.graphql.
const (
	opQueueMetrics  = "QueueMetrics"
	opClusterQueues = "ClusterQueues"
)

// Metrics is the latest time bucket of a cluster queue's advanced queue
// metrics.
type Metrics struct {
	Timestamp  time.Time // start of the bucket
	JobsPassed int64     // jobs that passed in the bucket
	JobsFailed int64     // jobs that failed in the bucket
	// Wait times of the bucket's jobs, in seconds.
	WaitMin, WaitP50, WaitP95, WaitMax float64
}

// Wire shapes. Pointers tell null or absent from zero: a field the schema
// says is non-null must be there.
type (
	wireAnswer struct {
		Data *struct {
			Organization *struct {
				Clusters *wireClusters `json:"clusters"`
				Cluster  *struct {
					Queues *wireQueues `json:"queues"`
				} `json:"cluster"`
			} `json:"organization"`
		} `json:"data"`
	}
	wireClusters struct {
		Edges []*struct {
			Node *struct {
				UUID   *string     `json:"uuid"`
				Name   *string     `json:"name"`
				Queues *wireQueues `json:"queues"`
			} `json:"node"`
		} `json:"edges"`
		PageInfo *wirePageInfo `json:"pageInfo"`
	}
	wireQueues struct {
		Edges []*struct {
			Node *struct {
				UUID    *string      `json:"uuid"`
				Key     *string      `json:"key"`
				Metrics *wireMetrics `json:"metrics"`
			} `json:"node"`
		} `json:"edges"`
		PageInfo *wirePageInfo `json:"pageInfo"`
	}
	wireMetrics struct {
		Timestamp       *string `json:"timestamp"`
		JobsPassedCount *int64  `json:"jobsPassedCount"`
		JobsFailedCount *int64  `json:"jobsFailedCount"`
		WaitTimeSec     *struct {
			Min *float64 `json:"min"`
			Max *float64 `json:"max"`
			P50 *float64 `json:"p50"`
			P95 *float64 `json:"p95"`
		} `json:"waitTimeSec"`
	}
	wirePageInfo struct {
		HasNextPage *bool   `json:"hasNextPage"`
		EndCursor   *string `json:"endCursor"`
	}
)

// nextPage says whether a connection has more, and from which cursor.
type nextPage struct {
	more   bool
	cursor string
}

type pagedCluster struct {
	cluster Cluster
	next    nextPage // of its queues
}

type clustersPage struct {
	clusters []pagedCluster
	next     nextPage
}

var errNoOrganization = fmt.Errorf("%w: organization not found or not visible to the token", client.ErrNotFound)

// decodeOrganization reads the data.organization of an answer.
func decodeOrganization(b []byte) (*wireAnswer, error) {
	var a wireAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("%w: %s", client.ErrMalformed, describeJSONError(err))
	}
	if a.Data == nil {
		return nil, fmt.Errorf("%w: no data", client.ErrMalformed)
	}
	if a.Data.Organization == nil {
		return nil, errNoOrganization
	}
	return &a, nil
}

// decodeClustersPage reads the answer of QueueMetrics.
func decodeClustersPage(b []byte) (*clustersPage, error) {
	a, err := decodeOrganization(b)
	if err != nil {
		return nil, err
	}
	conn := a.Data.Organization.Clusters
	if conn == nil {
		return nil, fmt.Errorf("%w: no clusters connection", client.ErrMalformed)
	}
	page := &clustersPage{}
	if page.next, err = decodePageInfo(conn.PageInfo); err != nil {
		return nil, fmt.Errorf("clusters: %w", err)
	}
	for _, e := range conn.Edges {
		if e == nil || e.Node == nil {
			continue // a cluster gone between listing and reading
		}
		n := e.Node
		if n.UUID == nil || *n.UUID == "" || n.Name == nil {
			return nil, fmt.Errorf("%w: a cluster without uuid or name", client.ErrMalformed)
		}
		pc := pagedCluster{cluster: Cluster{UUID: *n.UUID, Name: *n.Name}}
		if pc.cluster.Queues, pc.next, err = decodeQueues(n.Queues); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", *n.UUID, err)
		}
		page.clusters = append(page.clusters, pc)
	}
	return page, nil
}

// decodeQueuesPage reads the answer of ClusterQueues.
func decodeQueuesPage(b []byte) ([]Queue, nextPage, error) {
	a, err := decodeOrganization(b)
	if err != nil {
		return nil, nextPage{}, err
	}
	cl := a.Data.Organization.Cluster
	if cl == nil {
		// Deleted while paged: its remaining queues are gone too, but the
		// poll would be partial.
		return nil, nextPage{}, fmt.Errorf("%w: cluster not found while paging its queues", client.ErrNotFound)
	}
	return decodeQueues(cl.Queues)
}

func decodeQueues(conn *wireQueues) ([]Queue, nextPage, error) {
	if conn == nil {
		return nil, nextPage{}, fmt.Errorf("%w: no queues connection", client.ErrMalformed)
	}
	next, err := decodePageInfo(conn.PageInfo)
	if err != nil {
		return nil, nextPage{}, fmt.Errorf("queues: %w", err)
	}
	queues := make([]Queue, 0, len(conn.Edges))
	for _, e := range conn.Edges {
		if e == nil || e.Node == nil {
			continue
		}
		n := e.Node
		if n.UUID == nil || *n.UUID == "" || n.Key == nil {
			return nil, nextPage{}, fmt.Errorf("%w: a queue without uuid or key", client.ErrMalformed)
		}
		q := Queue{UUID: *n.UUID, Key: *n.Key}
		if n.Metrics != nil {
			m, err := decodeMetrics(n.Metrics)
			if err != nil {
				return nil, nextPage{}, fmt.Errorf("queue %s: %w", *n.UUID, err)
			}
			q.Metrics = m
		}
		queues = append(queues, q)
	}
	return queues, next, nil
}

func decodePageInfo(p *wirePageInfo) (nextPage, error) {
	if p == nil || p.HasNextPage == nil {
		return nextPage{}, fmt.Errorf("%w: no pageInfo.hasNextPage", client.ErrMalformed)
	}
	if !*p.HasNextPage {
		return nextPage{}, nil
	}
	if p.EndCursor == nil || *p.EndCursor == "" {
		return nextPage{}, fmt.Errorf("%w: hasNextPage without endCursor", client.ErrMalformed)
	}
	return nextPage{more: true, cursor: *p.EndCursor}, nil
}

func decodeMetrics(w *wireMetrics) (*Metrics, error) {
	wt := w.WaitTimeSec
	if w.Timestamp == nil || w.JobsPassedCount == nil || w.JobsFailedCount == nil ||
		wt == nil || wt.Min == nil || wt.Max == nil || wt.P50 == nil || wt.P95 == nil {
		return nil, fmt.Errorf("%w: metrics without a required field", client.ErrMalformed)
	}
	ts, err := time.Parse(time.RFC3339Nano, *w.Timestamp)
	if err != nil {
		return nil, fmt.Errorf("%w: metrics timestamp is not RFC 3339", client.ErrMalformed)
	}
	return &Metrics{
		Timestamp: ts, JobsPassed: *w.JobsPassedCount, JobsFailed: *w.JobsFailedCount,
		WaitMin: *wt.Min, WaitP50: *wt.P50, WaitP95: *wt.P95, WaitMax: *wt.Max,
	}, nil
}

// describeJSONError says what is wrong with a body without quoting it.
func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("unexpected JSON %s at %s", te.Value, te.Field)
	default:
		return "invalid JSON"
	}
}
