// Package agentmetrics is a client for Buildkite's Agent Metrics API
// (GET https://agent.buildkite.com/v3/metrics), which tells, for the cluster
// of an agent token, how many agents are idle or busy and how many jobs are
// scheduled, running or waiting in each queue.
//
// It speaks HTTP and knows nothing of Prometheus. Errors wrap the sentinels
// of package client (client.ErrUnauthorized, ...), so callers test them with
// errors.Is. The agent token is sent only to the configured scheme and host,
// as "Authorization: Token ...", and never appears in an error.
package agentmetrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

// DefaultBaseURL is Buildkite's Agent API.
const DefaultBaseURL = "https://agent.buildkite.com/v3"

// PollDurationHeader asks clients to poll no faster than that many seconds.
const PollDurationHeader = "Buildkite-Agent-Metrics-Poll-Duration"

const (
	defaultMaxResponseBytes = 4 << 20
	// DefaultName is what the Observer hears as the organization of
	// requests made before any answer named one.
	DefaultName = "agent-metrics"
	// MaxPollDuration bounds what the header may ask for, so that garbage
	// cannot freeze the numbers for long.
	MaxPollDuration = time.Hour
)

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	// BaseURL is the Agent API root, default DefaultBaseURL. It must be http
	// or https with a host and no credentials, query or fragment.
	BaseURL string
	// Token supplies the agent token (one cluster's); required. It is asked
	// for before every request, so it may rotate.
	Token client.TokenSource
	// HTTPClient, default one with transport timeouts. Whatever it is, the
	// client refuses redirects to another scheme, host or port.
	HTTPClient *http.Client
	// MaxResponseBytes caps a response body; default 4 MiB. A larger body
	// is client.ErrMalformed.
	MaxResponseBytes int64
	// Observer hears of every HTTP request, with the organization of the
	// latest good answer for this token, or Name before the first one. May
	// be nil.
	Observer client.Observer
	// Name stands for the organization in what the Observer hears until an
	// answer has named it, so that those requests (a revoked token's 401s,
	// say) are counted under a stable name rather than ""; default
	// DefaultName. Giving each token its own (e.g. the token file's name)
	// keeps them apart.
	Name string
	// UserAgent is sent with every request; default "buildkite_exporter".
	UserAgent string
}

// Client calls the Agent Metrics API with one agent token. It is safe for
// concurrent use.
type Client struct {
	req      *httpapi.Requester
	observer client.Observer
	name     string

	mu  sync.Mutex
	org string // of the latest good answer
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Token == nil {
		return nil, errors.New("agentmetrics: Config.Token is required")
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, errors.New("agentmetrics: Config.MaxResponseBytes must not be negative")
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = defaultMaxResponseBytes
	}
	raw := cfg.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := httpapi.ParseBaseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("agentmetrics: %w", err)
	}
	c := &Client{observer: cfg.Observer, name: cfg.Name}
	if c.name == "" {
		c.name = DefaultName
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	c.req, err = httpapi.New(httpapi.Config{
		Base:         base,
		Token:        cfg.Token.Token,
		TokenName:    "agent token",
		AuthScheme:   "Token",
		HTTPClient:   hc,
		MaxBodyBytes: cfg.MaxResponseBytes,
		UserAgent:    cfg.UserAgent,
		Observe:      c.observe,
	})
	if err != nil {
		return nil, fmt.Errorf("agentmetrics: %w", err)
	}
	return c, nil
}

// Organization is the organization slug of the latest good answer, "" before
// the first one.
func (c *Client) Organization() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.org
}

// Metrics fetches GET {BaseURL}/metrics: every queue of the token's cluster.
// The result is never nil: with an error it holds only Requests.
func (c *Client) Metrics(ctx context.Context) (*Metrics, error) {
	m := &Metrics{}
	n, poll, err := c.get(ctx, "/metrics", "", func(b []byte) (string, error) {
		d, err := DecodeMetrics(b)
		if err != nil {
			return "", err
		}
		m = d
		return m.Organization, nil
	})
	if err != nil {
		return &Metrics{Requests: n}, err
	}
	m.Requests, m.PollDuration = n, poll
	return m, nil
}

// QueueMetrics fetches GET {BaseURL}/metrics/queue?name=queue: one queue.
// The result is never nil: with an error it holds only Queue and Requests.
func (c *Client) QueueMetrics(ctx context.Context, queue string) (*QueueMetrics, error) {
	m := &QueueMetrics{}
	n, poll, err := c.get(ctx, "/metrics/queue", url.Values{"name": {queue}}.Encode(), func(b []byte) (string, error) {
		d, err := DecodeQueueMetrics(b)
		if err != nil {
			return "", err
		}
		m = d
		return m.Organization, nil
	})
	if err != nil {
		return &QueueMetrics{Queue: queue, Requests: n}, err
	}
	m.Queue, m.Requests, m.PollDuration = queue, n, poll
	return m, nil
}

func (c *Client) observe(_ string, code int) {
	if c.observer == nil {
		return
	}
	org := c.Organization()
	if org == "" {
		org = c.name
	}
	c.observer.ObserveRequest(org, code)
}

// get sends one GET and hands a bounded 200 body to decode, which returns
// the answer's organization. It returns the requests sent and the answer's
// Poll-Duration (0 when absent or invalid).
func (c *Client) get(ctx context.Context, path, query string, decode func([]byte) (string, error)) (int, time.Duration, error) {
	u, err := c.req.Endpoint(path, query)
	if err != nil {
		return 0, 0, err
	}
	var poll time.Duration
	n, err := c.req.Do(ctx, httpapi.Request{Method: http.MethodGet, URL: u}, func(resp *httpapi.Response) error {
		poll = ParsePollDuration(resp.Header.Get(PollDurationHeader))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: HTTP %d, want 200", client.ErrMalformed, resp.StatusCode)
		}
		org, err := decode(resp.Body)
		if err == nil {
			c.remember(org)
		}
		return err
	})
	var ae *httpapi.APIError
	if errors.As(err, &ae) {
		return n, 0, newError(ae)
	}
	return n, poll, err
}

func (c *Client) remember(org string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.org = org
}

// ParsePollDuration reads the Buildkite-Agent-Metrics-Poll-Duration header:
// whole (or fractional) seconds, at most MaxPollDuration. Anything else,
// absence included, is 0.
func ParsePollDuration(v string) time.Duration {
	s, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || !(s > 0) {
		return 0 // also NaN
	}
	if s >= MaxPollDuration.Seconds() {
		return MaxPollDuration
	}
	return time.Duration(s * float64(time.Second))
}
