package graphql

// Buildkite charges complexity points: 1 for every object (a connection,
// its edges list, each node, pageInfo, each nested object), 0 for scalars,
// and a connection's nodes at its requested page size, up front. Budgets
// are 50,000 requested points per query, and 20,000 actual points per
// organization and 5,000 per user every five minutes.
//
// A poll of an organization with N clusters whose largest has M queues
// (1 <= N, M <= MaxPageSize) is, once the client knows N and M from the
// previous poll, one QueueMetrics request of
//
//	Complexity(N, M) = 4 + 4N + 3NM requested points
//
// (organization, clusters, edges, pageInfo; per cluster node, queues,
// edges, pageInfo; per queue node, metrics, waitTimeSec). Actual points are
// lower: the same count over the queues that exist, minus 2 for a queue
// whose metrics is null. More than MaxPageSize clusters add a request per
// further page; more than MaxPageSize queues in a cluster add
// QueuesComplexity(MaxPageSize) per further page of that cluster. For
// example 3 clusters of at most 10 queues: 106 points a poll, 530 every
// five minutes at the default 1m interval.

// Complexity is the requested complexity of one QueueMetrics request
// asking for clusters clusters with queues queues each.
func Complexity(clusters, queues int) int { return 4 + 4*clusters + 3*clusters*queues }

// QueuesComplexity is the requested complexity of one ClusterQueues request
// (a further page of one cluster's queues) asking for queues queues:
// organization, cluster, queues, edges and pageInfo, plus 3 a queue.
func QueuesComplexity(queues int) int { return 5 + 3*queues }
