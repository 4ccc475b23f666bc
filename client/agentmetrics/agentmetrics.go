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
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"
)

// DefaultBaseURL is Buildkite's Agent API.
const DefaultBaseURL = "https://agent.buildkite.com/v3"

// PollDurationHeader asks clients to poll no faster than that many seconds.
const PollDurationHeader = "Buildkite-Agent-Metrics-Poll-Duration"

const (
	defaultMaxResponseBytes = 4 << 20
	defaultUserAgent        = "buildkite_exporter"
	maxErrorBodyBytes       = 64 << 10
	maxDrainBytes           = 256 << 10
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
	// Observer hears of every HTTP request, with the organization the
	// client knows for this token (that of the latest good answer, "" before
	// the first one). May be nil.
	Observer client.Observer
	// UserAgent is sent with every request; default "buildkite_exporter".
	UserAgent string
}

// Client calls the Agent Metrics API with one agent token. It is safe for
// concurrent use.
type Client struct {
	base      *url.URL
	token     client.TokenSource
	http      *http.Client
	maxBytes  int64
	observer  client.Observer
	userAgent string

	mu  sync.Mutex
	org string // of the latest good answer
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Token == nil {
		return nil, errors.New("agentmetrics: Config.Token is required")
	}
	raw := cfg.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := parseBaseURL(raw)
	if err != nil {
		return nil, err
	}
	c := &Client{
		base:      base,
		token:     cfg.Token,
		maxBytes:  cfg.MaxResponseBytes,
		observer:  cfg.Observer,
		userAgent: cfg.UserAgent,
	}
	switch {
	case c.maxBytes < 0:
		return nil, errors.New("agentmetrics: Config.MaxResponseBytes must not be negative")
	case c.maxBytes == 0:
		c.maxBytes = defaultMaxResponseBytes
	}
	if c.userAgent == "" {
		c.userAgent = defaultUserAgent
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient // a copy: the caller's keeps its redirect policy
	} else {
		hc = http.Client{Transport: defaultTransport(), Timeout: time.Minute}
	}
	hc.CheckRedirect = safety.RedirectPolicy(c.base, hc.CheckRedirect, 5, errForeignRedirect)
	c.http = &hc
	return c, nil
}

var errForeignRedirect = fmt.Errorf("%w: redirect to another host refused", client.ErrUnsafeLink)

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := safety.ParseBaseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("agentmetrics: %w", err)
	}
	return u, nil
}

func defaultTransport() http.RoundTripper {
	return safety.NewTransport(&http.Transport{Proxy: http.ProxyFromEnvironment})
}

// Organization is the organization slug of the latest good answer, "" before
// the first one.
func (c *Client) Organization() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.org
}

// Metrics fetches GET {BaseURL}/metrics: every queue of the token's cluster.
func (c *Client) Metrics(ctx context.Context) (*Metrics, error) {
	u := c.endpoint("/metrics", "")
	var m *Metrics
	poll, err := c.get(ctx, u, func(b []byte) (string, error) {
		var err error
		if m, err = DecodeMetrics(b); err != nil {
			return "", err
		}
		return m.Organization, nil
	})
	if err != nil {
		return nil, err
	}
	m.PollDuration = poll
	return m, nil
}

// QueueMetrics fetches GET {BaseURL}/metrics/queue?name=queue: one queue.
func (c *Client) QueueMetrics(ctx context.Context, queue string) (*QueueMetrics, error) {
	u := c.endpoint("/metrics/queue", url.Values{"name": {queue}}.Encode())
	var m *QueueMetrics
	poll, err := c.get(ctx, u, func(b []byte) (string, error) {
		var err error
		if m, err = DecodeQueueMetrics(b); err != nil {
			return "", err
		}
		return m.Organization, nil
	})
	if err != nil {
		return nil, err
	}
	m.Queue = queue
	m.PollDuration = poll
	return m, nil
}

func (c *Client) remember(org string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.org = org
}

func (c *Client) endpoint(path, query string) *url.URL {
	u := *c.base
	u.Path += path
	if u.RawPath != "" {
		u.RawPath += path
	}
	u.RawQuery = query
	return &u
}

func (c *Client) observe(code int) {
	if c.observer != nil {
		c.observer.ObserveRequest(c.Organization(), code)
	}
}

// get sends one request and hands a bounded 200 body to decode, which
// returns the answer's organization. It returns the Poll-Duration of the
// answer (0 when absent or invalid).
func (c *Client) get(ctx context.Context, u *url.URL, decode func([]byte) (string, error)) (time.Duration, error) {
	path := u.EscapedPath()
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	tok, err := c.token.Token()
	if err != nil {
		return 0, fmt.Errorf("agent token: %w", err)
	}
	if err := safety.CheckToken(tok); err != nil {
		return 0, fmt.Errorf("agent token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, safety.SanitizeTransportError(err, tok))
	}
	req.Header.Set("Authorization", "Token "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(0)
		return 0, safety.SanitizeTransportError(err, tok)
	}
	defer safety.DrainClose(resp.Body, maxDrainBytes)
	poll := ParsePollDuration(resp.Header.Get(PollDurationHeader))

	if resp.StatusCode != http.StatusOK {
		c.observe(resp.StatusCode)
		return poll, c.apiError(resp, path, tok, poll)
	}
	body, err := c.readBody(resp, path, tok)
	if err == nil {
		var org string
		if org, err = decode(body); err != nil {
			err = fmt.Errorf("GET %s: %w", path, err)
		} else {
			// Before observing, so that the very first good answer is
			// counted under its organization.
			c.remember(org)
		}
	}
	c.observe(resp.StatusCode)
	return poll, err
}

func (c *Client) readBody(resp *http.Response, path, tok string) ([]byte, error) {
	if resp.ContentLength > c.maxBytes {
		return nil, fmt.Errorf("%w: GET %s: response body of %d bytes exceeds the limit of %d",
			client.ErrMalformed, path, resp.ContentLength, c.maxBytes)
	}
	if err := checkContentType(resp.Header.Get("Content-Type"), tok); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: GET %s: reading the response body: %s",
			client.ErrMalformed, path, safety.Redact(err.Error(), tok))
	}
	if int64(len(b)) > c.maxBytes {
		return nil, fmt.Errorf("%w: GET %s: response body exceeds %d bytes", client.ErrMalformed, path, c.maxBytes)
	}
	return b, nil
}

// checkContentType accepts application/json with a UTF-8 (or no) charset.
func checkContentType(ct, tok string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		switch strings.ToLower(params["charset"]) {
		case "", "utf-8", "utf8", "us-ascii":
			return nil
		}
	}
	return fmt.Errorf("%w: content type %q, want application/json", client.ErrMalformed, safety.SanitizeMessage(ct, tok))
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
