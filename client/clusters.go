package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

const scopeReadClusters = "read_clusters"

// Cluster is the part of Buildkite's cluster object that the exporter uses.
type Cluster struct {
	ID             string // UUID, as in agents' web_url
	Name           string // as the Agent Metrics API reports it; "" when not sent
	DefaultQueueID string // the queue agents without a queue tag serve; "" when none
}

// Queue is the part of a cluster queue that the exporter uses.
type Queue struct {
	ID               string // UUID
	Key              string // unique within its cluster only
	DispatchPaused   bool   // Buildkite dispatches no jobs to the queue's agents
	DispatchPausedAt time.Time
}

// ClusterList is one complete listing of an organization's clusters.
type ClusterList struct {
	Clusters []Cluster // deduplicated by ID, in the order first seen
	Requests int       // HTTP requests the listing made, retries included
}

// QueueList is one complete listing of a cluster's queues.
type QueueList struct {
	Queues   []Queue // deduplicated by ID, in the order first seen
	Requests int     // HTTP requests the listing made, retries included
}

// ClusterQueues is a cluster with its queues.
type ClusterQueues struct {
	Cluster
	Queues []Queue
}

// ClusterSet is every cluster of an organization with its queues.
type ClusterSet struct {
	Clusters []ClusterQueues
	Requests int // HTTP requests the whole read made, retries included
}

// DefaultQueue returns the cluster's default queue, false when the cluster
// names none or its queues lack it.
func (c ClusterQueues) DefaultQueue() (Queue, bool) {
	for _, q := range c.Queues {
		if c.DefaultQueueID != "" && q.ID == c.DefaultQueueID {
			return q, true
		}
	}
	return Queue{}, false
}

// ListClusters returns all clusters of org (GET
// /organizations/{org}/clusters, scope read_clusters), paging through Link
// headers. Any failed page fails the listing. The list is never nil: with an
// error it holds only Requests.
func (c *Client) ListClusters(ctx context.Context, org string) (*ClusterList, error) {
	objs, requests, err := c.listAll(ctx, org, "clusters")
	if err != nil {
		return &ClusterList{Requests: requests}, err
	}
	list := &ClusterList{Requests: requests}
	for _, o := range objs {
		list.Clusters = append(list.Clusters, Cluster{
			ID:             o.id,
			Name:           o.string("name"),
			DefaultQueueID: o.string("default_queue_id"),
		})
	}
	return list, nil
}

// ListQueues returns all queues of one cluster of org (GET
// /organizations/{org}/clusters/{id}/queues, scope read_clusters), paging
// through Link headers. Any failed page fails the listing. The list is never
// nil: with an error it holds only Requests.
func (c *Client) ListQueues(ctx context.Context, org, clusterID string) (*QueueList, error) {
	if err := checkSegment("cluster ID", clusterID); err != nil {
		return &QueueList{}, err
	}
	objs, requests, err := c.listAll(ctx, org, "clusters", clusterID, "queues")
	if err != nil {
		return &QueueList{Requests: requests}, err
	}
	list := &QueueList{Requests: requests}
	for _, o := range objs {
		key := o.string("key")
		if key == "" {
			return &QueueList{Requests: requests}, fmt.Errorf("%w: a queue has no key", ErrMalformed)
		}
		q := Queue{ID: o.id, Key: key, DispatchPaused: o.bool("dispatch_paused")}
		if q.DispatchPaused {
			q.DispatchPausedAt = o.time("dispatch_paused_at")
		}
		list.Queues = append(list.Queues, q)
	}
	return list, nil
}

// ListClustersWithQueues lists org's clusters, then each cluster's queues,
// one request after another (an organization has a handful of clusters).
// Any failed request fails the whole read: a partial set would read as
// queues that vanished. The set is never nil: with an error it holds only
// Requests.
func (c *Client) ListClustersWithQueues(ctx context.Context, org string) (*ClusterSet, error) {
	clusters, err := c.ListClusters(ctx, org)
	requests := clusters.Requests
	if err != nil {
		return &ClusterSet{Requests: requests}, err
	}
	set := &ClusterSet{}
	for _, cl := range clusters.Clusters {
		queues, err := c.ListQueues(ctx, org, cl.ID)
		requests += queues.Requests
		if err != nil {
			return &ClusterSet{Requests: requests}, err
		}
		set.Clusters = append(set.Clusters, ClusterQueues{Cluster: cl, Queues: queues.Queues})
	}
	set.Requests = requests
	return set, nil
}

// listObject is one element of a list answer: its id and its other
// members, read one by one so that an odd optional member is only absent.
type listObject struct {
	id      string
	members map[string]json.RawMessage
}

// string is the member as a string; "" when absent, null or not a string.
func (o listObject) string(name string) string {
	var s string
	if json.Unmarshal(o.members[name], &s) != nil {
		return ""
	}
	return s
}

// bool is the member as a boolean; false when absent or not a boolean.
func (o listObject) bool(name string) bool {
	var b bool
	if json.Unmarshal(o.members[name], &b) != nil {
		return false
	}
	return b
}

// time is the member as an RFC 3339 timestamp; zero when absent or not one.
func (o listObject) time(name string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, o.string(name))
	if err != nil {
		return time.Time{}
	}
	return t
}

// listAll GETs every page of the list at BaseURL/organizations/{org}/path...,
// following the page numbers of next links (only the number is taken from a
// link: the URL is always built on BaseURL). Elements are deduplicated by id.
// It returns the requests sent, also with an error.
func (c *Client) listAll(ctx context.Context, org string, path ...string) ([]listObject, int, error) {
	if err := checkSegment("organization", org); err != nil {
		return nil, 0, err
	}
	s := "/organizations/" + url.PathEscape(org)
	for _, p := range path {
		s += "/" + url.PathEscape(p)
	}
	u, err := c.req.Endpoint(s, "")
	if err != nil {
		return nil, 0, err
	}
	var all []listObject
	seen := map[string]bool{}
	requests := 0
	for page := 1; ; {
		q := url.Values{}
		q.Set("per_page", strconv.Itoa(c.perPage))
		if page > 1 {
			q.Set("page", strconv.Itoa(page))
		}
		u.RawQuery = q.Encode()
		objs, next, n, err := c.listPage(ctx, org, u)
		requests += n
		if err != nil {
			return nil, requests, err
		}
		for _, o := range objs {
			if !seen[o.id] {
				seen[o.id] = true
				all = append(all, o)
			}
		}
		switch {
		case next == 0:
			return all, requests, nil
		case next <= page:
			return nil, requests, fmt.Errorf("%w: page %d of %s links back to page %d", ErrPageLimit, page, u.EscapedPath(), next)
		case next > c.maxPages:
			return nil, requests, fmt.Errorf("%w: more than %d pages", ErrPageLimit, c.maxPages)
		}
		page = next
	}
}

// listPage GETs one page: its objects, the page number of its next link (0
// when none) and the requests sent.
func (c *Client) listPage(ctx context.Context, org string, u *url.URL) ([]listObject, int, int, error) {
	var (
		objs []listObject
		next int
	)
	req := httpapi.Request{Method: http.MethodGet, URL: u, Key: org, Scope: scopeReadClusters}
	requests, err := c.do(ctx, req, func(resp *httpapi.Response) error {
		var err error
		if next, _, err = pageLinks(resp.Header.Values("Link")); err != nil {
			return err
		}
		objs, err = decodeListObjects(resp.Body)
		return err
	})
	if err != nil {
		return nil, 0, requests, err
	}
	return objs, next, requests, nil
}

// decodeListObjects reads a JSON array of objects, each with a string id.
func decodeListObjects(body []byte) ([]listObject, error) {
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	objs := make([]listObject, 0, len(raw))
	for i, m := range raw {
		o := listObject{members: m}
		if o.id = o.string("id"); o.id == "" {
			return nil, fmt.Errorf("%w: element %d has no id", ErrMalformed, i)
		}
		objs = append(objs, o)
	}
	return objs, nil
}
