package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"
)

// DefaultBaseURL is Buildkite's REST API.
const DefaultBaseURL = "https://api.buildkite.com/v2"

const (
	defaultPageConcurrency  = 8
	defaultPerPage          = 100
	maxPerPage              = 100 // Buildkite clamps larger values
	defaultMaxPages         = 1000
	defaultMaxResponseBytes = 16 << 20
	defaultMaxRetries       = 2
	defaultRetryBackoff     = 250 * time.Millisecond
	maxRetryBackoff         = 30 * time.Second
	defaultUserAgent        = "buildkite_exporter"

	maxErrorBodyBytes = 64 << 10  // error bodies are one short JSON object
	maxDrainBytes     = 256 << 10 // drained for connection reuse; beyond that closing is cheaper

	// A 429 blocks the organization for the RateLimit-Reset seconds, kept
	// within these bounds: at least a second so that a "0" does not let a
	// storm through, at most an hour so that garbage cannot block forever.
	defaultRateLimitReset = 60
	minRateLimitReset     = 1
	maxRateLimitReset     = 3600
)

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	// BaseURL is the API root, default DefaultBaseURL. It must be http or
	// https with a host; the token is only ever sent to its scheme and host.
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

// Client calls Buildkite's REST Agents API. It is safe for concurrent use.
type Client struct {
	base             *url.URL // scheme, host and path of BaseURL, no trailing slash
	token            TokenSource
	http             *http.Client
	pageConcurrency  int
	perPage          int
	maxPages         int
	maxResponseBytes int64
	maxRetries       int
	retryBackoff     time.Duration
	observer         Observer
	now              func() time.Time
	userAgent        string

	mu   sync.Mutex
	orgs map[string]*orgState
}

// orgState is what the client remembers of an organization's rate limit.
type orgState struct {
	rateLimit    RateLimit
	hasRateLimit bool
	blockedUntil time.Time
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Token == nil {
		return nil, errors.New("client: Config.Token is required")
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
		base:             base,
		token:            cfg.Token,
		pageConcurrency:  cfg.PageConcurrency,
		perPage:          cfg.PerPage,
		maxPages:         cfg.MaxPages,
		maxResponseBytes: cfg.MaxResponseBytes,
		maxRetries:       cfg.MaxRetries,
		retryBackoff:     cfg.RetryBackoff,
		observer:         cfg.Observer,
		now:              cfg.Now,
		userAgent:        cfg.UserAgent,
		orgs:             make(map[string]*orgState),
	}
	for _, d := range []struct {
		name string
		v    *int
		def  int
	}{
		{"PageConcurrency", &c.pageConcurrency, defaultPageConcurrency},
		{"PerPage", &c.perPage, defaultPerPage},
		{"MaxPages", &c.maxPages, defaultMaxPages},
	} {
		switch {
		case *d.v < 0:
			return nil, fmt.Errorf("client: Config.%s must not be negative", d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.perPage > maxPerPage {
		return nil, fmt.Errorf("client: Config.PerPage must be at most %d", maxPerPage)
	}
	switch {
	case c.maxResponseBytes < 0:
		return nil, errors.New("client: Config.MaxResponseBytes must not be negative")
	case c.maxResponseBytes == 0:
		c.maxResponseBytes = defaultMaxResponseBytes
	}
	switch {
	case c.maxRetries < -1:
		return nil, errors.New("client: Config.MaxRetries must be -1 (no retries) or more")
	case c.maxRetries == -1:
		c.maxRetries = 0
	case c.maxRetries == 0:
		c.maxRetries = defaultMaxRetries
	}
	switch {
	case c.retryBackoff < 0:
		return nil, errors.New("client: Config.RetryBackoff must not be negative")
	case c.retryBackoff == 0:
		c.retryBackoff = defaultRetryBackoff
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.userAgent == "" {
		c.userAgent = defaultUserAgent
	}

	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient // a copy: the caller's client keeps its own redirect policy
	} else {
		// No overall Timeout would bound a body that trickles in forever;
		// two minutes is far beyond any sane page.
		hc = http.Client{Transport: defaultTransport(c.pageConcurrency), Timeout: 2 * time.Minute}
	}
	hc.CheckRedirect = safety.RedirectPolicy(c.base, hc.CheckRedirect, 10, errForeignRedirect)
	c.http = &hc
	return c, nil
}

var errForeignRedirect = fmt.Errorf("%w: redirect to another host refused", ErrUnsafeLink)

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := safety.ParseBaseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return u, nil
}

func defaultTransport(conns int) http.RoundTripper {
	t := safety.NewTransport(&http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true})
	t.ExpectContinueTimeout = time.Second
	t.MaxIdleConnsPerHost = max(conns, 2) // keep the page fetchers' connections
	return t
}

// RateLimit returns what the RateLimit-* headers of the latest response for
// org said, and false when no response for org carried them yet.
func (c *Client) RateLimit(org string) (RateLimit, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.orgs[org]; st != nil && st.hasRateLimit {
		return st.rateLimit, true
	}
	return RateLimit{}, false
}

// BlockedUntil returns when the 429 window of org ends, or the zero time
// when org is not blocked.
func (c *Client) BlockedUntil(org string) time.Time {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.orgs[org]; st != nil && now.Before(st.blockedUntil) {
		return st.blockedUntil
	}
	return time.Time{}
}

// stateLocked returns org's state, creating it; c.mu must be held.
func (c *Client) stateLocked(org string) *orgState {
	st := c.orgs[org]
	if st == nil {
		st = &orgState{}
		c.orgs[org] = st
	}
	return st
}

func (c *Client) recordRateLimit(org string, h http.Header) {
	rl, ok := parseRateLimit(h)
	if !ok {
		return
	}
	rl.ObservedAt = c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.stateLocked(org)
	st.rateLimit, st.hasRateLimit = rl, true
}

func (c *Client) block(org string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.stateLocked(org); until.After(st.blockedUntil) {
		st.blockedUntil = until
	}
}

// parseRateLimit reads the organization's RateLimit-* headers; false when
// none of them is present and numeric.
func parseRateLimit(h http.Header) (RateLimit, bool) {
	var rl RateLimit
	found := false
	for _, f := range [...]struct {
		name string
		dst  *int
	}{
		{"RateLimit-Limit", &rl.Limit},
		{"RateLimit-Remaining", &rl.Remaining},
		{"RateLimit-Reset", &rl.Reset},
	} {
		if v := h.Get(f.name); v != "" {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				*f.dst, found = n, true
			}
		}
	}
	return rl, found
}

func (c *Client) observe(org string, code int) {
	if c.observer != nil {
		c.observer.ObserveRequest(org, code)
	}
}

// call is one API call; do may send it several times.
type call struct {
	org    string
	method string
	u      *url.URL
	body   []byte // JSON request body; nil for none
	scope  string // the scope the endpoint needs, for 403 messages that name none
}

// do performs c with retries of 5xx answers and transport errors. onOK
// consumes the bounded body of a 2xx answer; it runs again from scratch if a
// truncated body makes the attempt retryable. With a nil onOK any 2xx is
// success.
func (c *Client) do(ctx context.Context, cl call, onOK func(*http.Response, io.Reader) error) error {
	if !safety.SameOrigin(c.base, cl.u) { // defense in depth: callers check links already
		return fmt.Errorf("%w: %s is not on %s", ErrUnsafeLink, safety.SafeURL(cl.u.String()), c.base.Host)
	}
	backoff := c.retryBackoff
	for attempt := 0; ; attempt++ {
		retry, err := c.attempt(ctx, cl, onOK)
		if err == nil || !retry || attempt >= c.maxRetries {
			return err
		}
		wait := jitter(backoff)
		backoff = min(2*backoff, maxRetryBackoff)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // no time to wait and try again: the last answer is the better error
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// jitter returns a random duration in [d/2, d), so that page fetchers that
// failed together do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

// attempt sends cl once. retry reports whether the error is worth another
// attempt.
func (c *Client) attempt(ctx context.Context, cl call, onOK func(*http.Response, io.Reader) error) (retry bool, err error) {
	path := cl.u.EscapedPath()
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("%s %s: %w", cl.method, path, err)
	}
	if until := c.BlockedUntil(cl.org); !until.IsZero() {
		return false, &RateLimitError{Org: cl.org, ResetAt: until}
	}
	tok, err := c.token.Token()
	if err != nil {
		return false, fmt.Errorf("API token: %w", err)
	}
	if err := safety.CheckToken(tok); err != nil {
		return false, fmt.Errorf("API token: %w", err)
	}
	// The server may echo the token into what errors quote (a Location,
	// a Link's host, relation or path): no error leaves with it.
	defer func() { err = safety.RedactError(err, tok) }()
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, cl.u.String(), body)
	if err != nil {
		return false, safety.SanitizeTransportError(err, tok)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	requestStatsFrom(ctx).add()
	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(cl.org, 0)
		err = safety.SanitizeTransportError(err, tok)
		if ctx.Err() != nil || errors.Is(err, ErrUnsafeLink) {
			return false, err
		}
		return true, err
	}
	defer safety.DrainClose(resp.Body, maxDrainBytes)
	c.observe(cl.org, resp.StatusCode)
	c.recordRateLimit(cl.org, resp.Header)

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return c.handleOK(ctx, cl, resp, tok, onOK)
	case code == http.StatusTooManyRequests:
		return false, c.rateLimited(cl, resp, tok)
	default:
		return code >= 500, c.apiError(cl, resp, tok)
	}
}

func (c *Client) handleOK(ctx context.Context, cl call, resp *http.Response, tok string, onOK func(*http.Response, io.Reader) error) (retry bool, err error) {
	if onOK == nil {
		return false, nil
	}
	path := cl.u.EscapedPath()
	if resp.ContentLength > c.maxResponseBytes {
		return false, fmt.Errorf("%w: %s %s: response body of %d bytes exceeds the limit of %d",
			ErrMalformed, cl.method, path, resp.ContentLength, c.maxResponseBytes)
	}
	if err := checkContentType(resp.Header.Get("Content-Type"), tok); err != nil {
		return false, fmt.Errorf("%s %s: %w", cl.method, path, err)
	}
	br := &boundedReader{r: resp.Body, limit: c.maxResponseBytes}
	err = onOK(resp, br)
	switch {
	case err == nil:
		return false, nil
	case ctx.Err() != nil:
		return false, fmt.Errorf("%s %s: %w", cl.method, path, ctx.Err())
	case errors.Is(err, errTooLarge):
		return false, fmt.Errorf("%w: %s %s: response body exceeds %d bytes", ErrMalformed, cl.method, path, c.maxResponseBytes)
	case br.readErr != nil:
		// The connection broke mid-body: as good as a transport error.
		return true, fmt.Errorf("%w: %s %s: reading the response body: %s",
			ErrMalformed, cl.method, path, safety.Redact(br.readErr.Error(), tok))
	default:
		return false, fmt.Errorf("%s %s: %w", cl.method, path, err)
	}
}

// checkContentType accepts application/json, with a UTF-8 (or ASCII)
// charset if any.
func checkContentType(ct, tok string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		switch cs := strings.ToLower(params["charset"]); cs {
		case "", "utf-8", "utf8", "us-ascii":
			return nil
		}
	}
	return fmt.Errorf("%w: content type %q, want application/json", ErrMalformed, safety.SanitizeMessage(ct, tok))
}

// errorBody is Buildkite's error answer; 429s add the reset seconds.
type errorBody struct {
	Message string   `json:"message"`
	Scope   string   `json:"scope"` // on 429: rest (organization) or rest_user (token)
	Reset   *float64 `json:"reset"`
}

// readErrorBody reads a bounded error body. A body that is not the JSON
// object Buildkite sends (a proxy's HTML page, say) becomes the message.
func readErrorBody(r io.Reader, tok string) errorBody {
	b, _ := io.ReadAll(io.LimitReader(r, maxErrorBodyBytes))
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err != nil {
		eb = errorBody{Message: string(b)}
	}
	eb.Message = safety.SanitizeMessage(eb.Message, tok)
	return eb
}

func (c *Client) rateLimited(cl call, resp *http.Response, tok string) error {
	eb := readErrorBody(resp.Body, tok)
	reset := defaultRateLimitReset
	header := "RateLimit-Reset"
	if eb.Scope == "rest_user" { // the per-token limit is spent, not the organization's
		header = "RateLimit-User-Reset"
	}
	if n, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get(header))); err == nil {
		reset = n
	} else if eb.Reset != nil && !math.IsNaN(*eb.Reset) {
		reset = int(math.Ceil(min(max(*eb.Reset, -1), maxRateLimitReset)))
	}
	reset = min(max(reset, minRateLimitReset), maxRateLimitReset)
	until := c.now().Add(time.Duration(reset) * time.Second)
	c.block(cl.org, until)
	return &RateLimitError{Org: cl.org, ResetAt: until, Sent: true, Message: eb.Message}
}

// scopeRE finds a scope name in a 403 message: Buildkite's scopes are
// read_* and write_*; "the X scope" covers any other wording.
var (
	scopeRE      = regexp.MustCompile(`\b((?:read|write)_[a-z_]+)\b`)
	scopeNamedRE = regexp.MustCompile(`\b([a-z][a-z0-9_]*) scope\b`)
)

func scopeFrom(msg string) string {
	if m := scopeRE.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	if m := scopeNamedRE.FindStringSubmatch(msg); m != nil && m[1] != "the" && m[1] != "required" {
		return m[1]
	}
	return ""
}

func (c *Client) apiError(cl call, resp *http.Response, tok string) *APIError {
	eb := readErrorBody(resp.Body, tok)
	e := &APIError{
		StatusCode: resp.StatusCode,
		Message:    eb.Message,
		Method:     cl.method,
		Path:       safety.Redact(cl.u.EscapedPath(), tok),
	}
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized:
		e.kind = ErrUnauthorized
	case code == http.StatusForbidden:
		e.kind = ErrForbidden
		if e.Scope = scopeFrom(eb.Message); e.Scope == "" {
			e.Scope = cl.scope
		}
	case code == http.StatusNotFound:
		e.kind = ErrNotFound
	case code >= 500:
		e.kind = ErrServer
	case code >= 400: // 400 and 422 are documented; other 4xx mean the same to a caller
		e.kind = ErrRejected
	default: // 1xx or an unfollowed 3xx: not an answer the API gives
		e.kind = ErrMalformed
	}
	return e
}

var errTooLarge = errors.New("response body too large")

// boundedReader passes on at most limit bytes and fails with errTooLarge when
// the body holds more. It remembers the first read error other than io.EOF,
// which tells a broken connection from bad JSON.
type boundedReader struct {
	r        io.Reader
	n, limit int64
	readErr  error
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n > b.limit {
		return 0, errTooLarge
	}
	// Read one byte beyond the limit to learn whether there is more.
	if room := b.limit + 1 - b.n; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && b.readErr == nil {
		b.readErr = err
	}
	if b.n > b.limit {
		return n - int(b.n-b.limit), errTooLarge
	}
	return n, err
}
