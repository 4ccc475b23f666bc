package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

// DefaultBaseURL is Buildkite's REST API.
const DefaultBaseURL = "https://api.buildkite.com/v2"

const (
	defaultPageConcurrency  = 8
	defaultPerPage          = 100
	maxPerPage              = 100 // Buildkite clamps larger values
	defaultMaxPages         = 1000
	defaultMaxResponseBytes = 16 << 20
	// A real agent object is about 2 KB: 256 MiB is some 130,000 agents,
	// beyond the largest fleets, while a listing that never ends (or a
	// proxy padding every page) cannot take the process' memory.
	defaultMaxListingBytes = 256 << 20
	defaultMaxRetries      = 2
)

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	// BaseURL is the API root, default DefaultBaseURL. It must be http or
	// https with a host; the token is only ever sent to its scheme and host,
	// and every page of a listing is requested from it.
	BaseURL string
	// Token supplies the API token; required.
	Token TokenSource
	// HTTPClient, default one with transport timeouts. In all cases the
	// client refuses redirects to another scheme or host, so the
	// Authorization header never follows them.
	HTTPClient *http.Client
	// PageConcurrency is how many pages are fetched at once after the
	// first; default 8.
	PageConcurrency int
	// PerPage is the page size asked for; default and maximum 100.
	PerPage int
	// MaxPages caps one listing; default 1000.
	MaxPages int
	// MaxResponseBytes caps each response body; default 16 MiB. A larger
	// body is ErrMalformed.
	MaxResponseBytes int64
	// MaxListingBytes caps the bodies of one listing's pages together;
	// default 256 MiB. Beyond it the listing fails with ErrMalformed.
	MaxListingBytes int64
	// MaxRetries is how often a 5xx answer or a transport error is retried;
	// default 2, -1 for none.
	MaxRetries int
	// RetryBackoff is the wait before the first retry, doubled for each
	// further one, with jitter; default 250ms.
	RetryBackoff time.Duration
	// Observer hears of every HTTP request; may be nil. It is called from
	// several goroutines at once during a listing.
	Observer Observer
	// Now is the clock for rate-limit bookkeeping; default time.Now. It is
	// called from several goroutines at once.
	Now func() time.Time
	// UserAgent is sent with every request; default "buildkite_exporter".
	UserAgent string
}

// Client calls Buildkite's REST Agents API with one token. It is safe for
// concurrent use. It keeps the rate-limit budgets of the token: one per
// organization (RateLimit-*) and the token user's (RateLimit-User-*).
type Client struct {
	req             *httpapi.Requester
	pageConcurrency int
	perPage         int
	maxPages        int
	maxListingBytes int64
	budgets         *httpapi.Budgets
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Token == nil {
		return nil, errors.New("client: Config.Token is required")
	}
	if err := applyDefaults(&cfg); err != nil {
		return nil, err
	}
	raw := cfg.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := httpapi.ParseBaseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{
		pageConcurrency: cfg.PageConcurrency,
		perPage:         cfg.PerPage,
		maxPages:        cfg.MaxPages,
		maxListingBytes: cfg.MaxListingBytes,
		budgets:         newBudgets(cfg.Now),
	}
	var observe func(string, int)
	if cfg.Observer != nil {
		observe = cfg.Observer.ObserveRequest
	}
	c.req, err = httpapi.New(httpapi.Config{
		Base:         base,
		Token:        cfg.Token.Token,
		TokenName:    "API token",
		AuthScheme:   "Bearer",
		HTTPClient:   cfg.HTTPClient,
		MaxBodyBytes: cfg.MaxResponseBytes,
		MaxRetries:   cfg.MaxRetries,
		RetryBackoff: cfg.RetryBackoff,
		UserAgent:    cfg.UserAgent,
		Observe:      observe,
		Gate:         c.budgets.Gate,
		Header:       c.budgets.Record,
	})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return c, nil
}

// applyDefaults checks cfg's numbers and fills in the defaults.
func applyDefaults(cfg *Config) error {
	for _, d := range []struct {
		name string
		v    *int
		def  int
	}{
		{"PageConcurrency", &cfg.PageConcurrency, defaultPageConcurrency},
		{"PerPage", &cfg.PerPage, defaultPerPage},
		{"MaxPages", &cfg.MaxPages, defaultMaxPages},
	} {
		switch {
		case *d.v < 0:
			return fmt.Errorf("client: Config.%s must not be negative", d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	for _, d := range []struct {
		name string
		v    *int64
		def  int64
	}{
		{"MaxResponseBytes", &cfg.MaxResponseBytes, defaultMaxResponseBytes},
		{"MaxListingBytes", &cfg.MaxListingBytes, defaultMaxListingBytes},
	} {
		switch {
		case *d.v < 0:
			return fmt.Errorf("client: Config.%s must not be negative", d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	switch {
	case cfg.PerPage > maxPerPage:
		return fmt.Errorf("client: Config.PerPage must be at most %d", maxPerPage)
	case cfg.MaxRetries < -1:
		return errors.New("client: Config.MaxRetries must be -1 (no retries) or more")
	case cfg.MaxRetries == -1:
		cfg.MaxRetries = 0
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = defaultMaxRetries
	}
	if cfg.RetryBackoff < 0 {
		return errors.New("client: Config.RetryBackoff must not be negative")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return nil
}

// do sends one request for org. A 429 closes the budget it names before
// do returns.
func (c *Client) do(ctx context.Context, req httpapi.Request, handle func(*httpapi.Response) error) (int, error) {
	n, err := c.req.Do(ctx, req, handle)
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests {
		return n, c.budgets.RateLimited(req.Key, ae)
	}
	return n, err
}
