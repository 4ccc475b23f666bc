package graphql

import (
	"context"
	"fmt"

	"github.com/buildkite-exporter/buildkite_exporter/client"
)

// Result is one poll of an organization's queue metrics.
type Result struct {
	Organization string
	// Clusters in the order the API lists them (by name), each listed once,
	// with their queues (by key). Nil when the poll failed.
	Clusters []Cluster
	// Requests is how many HTTP requests the poll sent (also when it
	// failed).
	Requests int
	// RequestedComplexity sums the requested complexity of those requests
	// (see Complexity and QueuesComplexity).
	RequestedComplexity int
}

// Cluster is one cluster and its queues.
type Cluster struct {
	UUID, Name string
	Queues     []Queue
}

// Queue is one cluster queue.
type Queue struct {
	UUID, Key string
	// Metrics is nil when Buildkite sent null: the organization has no
	// advanced queue metrics.
	Metrics *Metrics
}

// pageSizes are the page sizes of one poll: the clusters of the
// organization, and the queues of its largest cluster, in the latest good
// poll (initial guesses before one).
type pageSizes struct{ clusters, queues int }

func (c *Client) pageSizes(org string) pageSizes {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.sizes[org]; ok {
		return s
	}
	return pageSizes{clusters: initialClusterPageSize, queues: initialQueuePageSize}
}

func (c *Client) rememberSizes(org string, clusters []Cluster) {
	s := pageSizes{clusters: clamp(len(clusters)), queues: 1}
	for _, cl := range clusters {
		s.queues = max(s.queues, clamp(len(cl.Queues)))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sizes[org] = s
}

// clamp makes n a page size: at least 1, at most MaxPageSize.
func clamp(n int) int { return min(max(n, 1), MaxPageSize) }

// QueueMetrics polls the queue metrics of every cluster queue of org: pages
// of clusters with the first page of their queues, and further pages of
// queues for a cluster that has more. Page sizes are those the previous good
// poll of org needed, so that a steady organization costs one request. The
// returned Result is never nil: on error it still counts the requests.
func (c *Client) QueueMetrics(ctx context.Context, org string) (*Result, error) {
	res := &Result{Organization: org}
	sizes := c.pageSizes(org)
	seen := map[string]bool{}
	after := ""
	for {
		page, err := c.clustersPage(ctx, org, sizes, after, res)
		if err != nil {
			return res, err
		}
		for _, cl := range page.clusters {
			if seen[cl.cluster.UUID] { // the list moved while paged
				continue
			}
			seen[cl.cluster.UUID] = true
			if err := c.moreQueues(ctx, org, sizes.queues, &cl, res); err != nil {
				return res, err
			}
			res.Clusters = append(res.Clusters, cl.cluster)
		}
		if !page.next.more {
			break
		}
		after = page.next.cursor
	}
	if res.Clusters == nil {
		res.Clusters = []Cluster{}
	}
	c.rememberSizes(org, res.Clusters)
	return res, nil
}

// clustersPage asks for one page of clusters.
func (c *Client) clustersPage(ctx context.Context, org string, sizes pageSizes, after string, res *Result) (*clustersPage, error) {
	if err := c.spend(res); err != nil {
		return nil, err
	}
	vars := map[string]any{"org": org, "clusters": sizes.clusters, "queues": sizes.queues}
	if after != "" {
		vars["after"] = after
	}
	res.RequestedComplexity += Complexity(sizes.clusters, sizes.queues)
	b, err := c.post(ctx, org, opQueueMetrics, vars, &res.Requests)
	if err != nil {
		return nil, err
	}
	page, err := decodeClustersPage(b)
	if err != nil {
		return nil, fmt.Errorf("GraphQL %s for organization %q: %w", opQueueMetrics, org, err)
	}
	return page, nil
}

// moreQueues completes the queues of a cluster whose first page said
// there are more.
func (c *Client) moreQueues(ctx context.Context, org string, size int, cl *pagedCluster, res *Result) error {
	seen := map[string]bool{}
	for _, q := range cl.cluster.Queues {
		seen[q.UUID] = true
	}
	for next := cl.next; next.more; {
		if err := c.spend(res); err != nil {
			return err
		}
		vars := map[string]any{"org": org, "cluster": cl.cluster.UUID, "queues": size, "after": next.cursor}
		res.RequestedComplexity += QueuesComplexity(size)
		b, err := c.post(ctx, org, opClusterQueues, vars, &res.Requests)
		if err != nil {
			return err
		}
		var queues []Queue
		if queues, next, err = decodeQueuesPage(b); err != nil {
			return fmt.Errorf("GraphQL %s for organization %q: %w", opClusterQueues, org, err)
		}
		for _, q := range queues {
			if !seen[q.UUID] {
				seen[q.UUID] = true
				cl.cluster.Queues = append(cl.cluster.Queues, q)
			}
		}
	}
	return nil
}

// spend refuses a request past Config.MaxRequests: paging that does not end.
func (c *Client) spend(res *Result) error {
	if res.Requests >= c.maxRequests {
		return fmt.Errorf("%w: GraphQL paging for organization %q needed more than %d requests", client.ErrPageLimit, res.Organization, c.maxRequests)
	}
	return nil
}
