// Package graphql is a client for the part of Buildkite's GraphQL API that
// the exporter uses: the advanced queue metrics (wait times and finished
// jobs of the latest time bucket) of every cluster queue of an organization.
//
// It speaks HTTP and knows nothing of Prometheus. Errors wrap the sentinels
// of package client (client.ErrUnauthorized, ...) or ErrQuery, so callers
// test them with errors.Is. The token is sent only to the configured scheme,
// host and port, as "Authorization: Bearer ...", and never appears in an
// error.
package graphql

import (
	"cmp"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

// DefaultURL is Buildkite's GraphQL endpoint.
const DefaultURL = "https://graphql.buildkite.com/v1"

// Rate-limit scopes of the GraphQL budgets, in complexity points.
const (
	ScopeGraphQL     = "graphql"      // the organization's budget (RateLimit-*)
	ScopeGraphQLUser = "graphql_user" // the token user's budget (RateLimit-User-*), shared by all organizations
)

// Page sizes. MaxPageSize bounds every connection, so that one request never
// asks for more than Complexity(MaxPageSize, MaxPageSize) = 30,404 points,
// well under Buildkite's 50,000 per query.
const (
	MaxPageSize             = 100
	initialClusterPageSize  = 10
	initialQueuePageSize    = 20
	defaultMaxRequests      = 200
	defaultMaxResponseBytes = 8 << 20
)

//go:embed queue_metrics.graphql
var document string

// Document is the GraphQL document the client sends (both operations).
func Document() string { return document }

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	// URL is the GraphQL endpoint, default DefaultURL. It must be http or
	// https with a host and no credentials, query or fragment.
	URL string
	// Token supplies the API token; required. It is asked for before every
	// request, so it may rotate. It needs GraphQL access.
	Token client.TokenSource
	// HTTPClient, default one with transport timeouts. Whatever it is, the
	// client refuses redirects to another scheme, host or port.
	HTTPClient *http.Client
	// MaxResponseBytes caps a response body; default 8 MiB.
	MaxResponseBytes int64
	// MaxRequests caps the requests of one poll (pages of clusters and of
	// queues); default 200. A poll that needs more fails.
	MaxRequests int
	// Observer hears of every HTTP request, with the organization it was
	// for. May be nil.
	Observer client.Observer
	// Now is the clock for rate-limit bookkeeping; default time.Now.
	Now func() time.Time
	// UserAgent is sent with every request; default "buildkite_exporter".
	UserAgent string
}

// Client asks Buildkite's GraphQL API for queue metrics. It is safe for
// concurrent use.
type Client struct {
	url         *url.URL
	req         *httpapi.Requester
	token       client.TokenSource
	maxRequests int
	observer    client.Observer

	budgets *httpapi.Budgets // the organizations' and the token user's

	mu    sync.Mutex
	sizes map[string]pageSizes // each organization's, from its latest good poll
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Token == nil:
		return nil, errors.New("graphql: Config.Token is required")
	case cfg.MaxResponseBytes < 0:
		return nil, errors.New("graphql: Config.MaxResponseBytes must not be negative")
	case cfg.MaxRequests < 0:
		return nil, errors.New("graphql: Config.MaxRequests must not be negative")
	}
	raw := cfg.URL
	if raw == "" {
		raw = DefaultURL
	}
	u, err := httpapi.ParseBaseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	c := &Client{url: u, token: cfg.Token, maxRequests: cmp.Or(cfg.MaxRequests, defaultMaxRequests),
		observer: cfg.Observer, sizes: map[string]pageSizes{}}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	c.budgets = newBudgets(now)
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute} // the requester adds its transport
	}
	c.req, err = httpapi.New(httpapi.Config{
		Base:         u,
		Token:        cfg.Token.Token,
		TokenName:    "API token",
		HTTPClient:   hc,
		MaxBodyBytes: cmp.Or(cfg.MaxResponseBytes, defaultMaxResponseBytes),
		UserAgent:    cfg.UserAgent,
		Observe:      c.observe,
		Gate:         c.budgets.Gate,
		Header:       c.budgets.Record,
	})
	if err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	return c, nil
}

// RateLimits are the two GraphQL budgets that apply to requests for one
// organization, in complexity points, each from the latest response that
// carried its headers.
type RateLimits struct {
	GraphQL        client.RateLimit // the organization's (scope graphql)
	GraphQLUser    client.RateLimit // the token user's (scope graphql_user)
	HasGraphQL     bool             // false until a response for the organization carried RateLimit-*
	HasGraphQLUser bool             // false until a response carried RateLimit-User-*
}

// RateLimits returns both GraphQL budgets for requests to org.
func (c *Client) RateLimits(org string) RateLimits {
	l := c.budgets.RateLimits(org)
	return RateLimits{GraphQL: client.RateLimit(l.Key), GraphQLUser: client.RateLimit(l.User), HasGraphQL: l.HasKey, HasGraphQLUser: l.HasUser}
}

// newBudgets returns the GraphQL budgets (scopes graphql and graphql_user).
func newBudgets(now func() time.Time) *httpapi.Budgets {
	return httpapi.NewBudgets(httpapi.BudgetsConfig{
		KeyScope: ScopeGraphQL, UserScope: ScopeGraphQLUser, DefaultReset: defaultRateLimitReset, Now: now,
		Error: func(org, scope string, until time.Time, e *httpapi.APIError) error {
			if e == nil {
				return &RateLimitError{Org: org, Scope: scope, ResetAt: until}
			}
			return &RateLimitError{Org: org, Scope: scope, ResetAt: until, Sent: true, Message: e.Message}
		},
	})
}

func (c *Client) observe(org string, code int) {
	if c.observer != nil {
		c.observer.ObserveRequest(org, code)
	}
}

// request is the JSON body of one GraphQL request.
type request struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

func encodeRequest(operation string, vars map[string]any) []byte {
	b, err := json.Marshal(request{Query: document, OperationName: operation, Variables: vars})
	if err != nil {
		panic(err) // strings and ints only: cannot fail
	}
	return b
}
