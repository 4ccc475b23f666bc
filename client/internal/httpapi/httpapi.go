// Package httpapi is the one HTTP layer under every Buildkite API client
// (REST agents and clusters, GraphQL, Agent Metrics). A Requester sends a
// request to one API root with one token and does what every client needs:
//
//   - the token goes only to the root's scheme, host and port, in an
//     Authorization header ("Bearer" or "Token"), never into an error;
//   - redirects to another host are refused, and at most MaxRedirects are
//     followed; response headers are bounded (MaxHeaderBytes) and so is
//     the body of every answer (Config.MaxBodyBytes);
//   - a 2xx answer must be application/json; other answers become an
//     *APIError wrapping one of the sentinels;
//   - 5xx answers, transport errors and bodies cut short are retried
//     within the context's deadline, with jittered backoff;
//   - hooks see every request (Observe), may refuse one before it is
//     sent (Gate, for rate-limit windows) and get every answer's headers
//     (Header, for rate-limit headers);
//   - Do returns how many requests it sent, retries and redirects
//     included.
//
// It knows nothing of what the bodies mean: clients decode them.
package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"
)

const (
	// MaxHeaderBytes bounds the response headers of one answer (all of
	// them, Link included); a larger header block fails the request.
	MaxHeaderBytes = 1 << 20
	// MaxRedirects is how many same-host redirects one request follows.
	// The APIs do not redirect; a loop must not cost many requests.
	MaxRedirects = 3

	defaultMaxBodyBytes = 16 << 20
	defaultRetryBackoff = 250 * time.Millisecond
	maxRetryBackoff     = 30 * time.Second
	defaultUserAgent    = "buildkite_exporter"
	maxDrainBytes       = 256 << 10 // drained for connection reuse; beyond that closing is cheaper
	maxPooledBuffer     = 4 << 20
)

// Config configures a Requester. Zero values mean the defaults.
type Config struct {
	// Base is the API root (from ParseBaseURL); only its scheme, host and
	// port ever receive the token. Required.
	Base *url.URL
	// Token returns the token before every request, so it may rotate.
	// Required.
	Token func() (string, error)
	// TokenName names the token in errors, e.g. "API token".
	TokenName string
	// AuthScheme is the Authorization scheme: "Bearer" (REST, GraphQL,
	// the default) or "Token" (Agent Metrics).
	AuthScheme string
	// HTTPClient is copied; nil means one with transport timeouts and
	// response headers bounded to MaxHeaderBytes (as is a given client
	// whose Transport is nil). A given Transport is used as it is: set
	// its MaxResponseHeaderBytes. The client's redirect policy runs after
	// the Requester's own.
	HTTPClient *http.Client
	// MaxBodyBytes caps every response body; default 16 MiB. A larger
	// body is ErrMalformed.
	MaxBodyBytes int64
	// MaxRetries is how often a 5xx answer or a transport error is
	// retried; 0 means never.
	MaxRetries int
	// RetryBackoff is the wait before the first retry, doubled for each
	// further one, with jitter; default 250ms.
	RetryBackoff time.Duration
	// UserAgent, default "buildkite_exporter".
	UserAgent string

	// Observe hears of every request sent: Request.Key and the status
	// code, 0 when no answer came; for a 2xx answer after the handler ran.
	// May be nil; called concurrently.
	Observe func(key string, code int)
	// Gate runs before every attempt; an error stops the request unsent
	// and is returned as it is (not retried). May be nil.
	Gate func(key string) error
	// Header gets every answer's status code and headers before its body
	// is read. May be nil; called concurrently.
	Header func(key string, code int, h http.Header)
}

// Requester sends requests to one API root. It is safe for concurrent use.
type Requester struct {
	cfg  Config
	http *http.Client
}

// Request is one API call.
type Request struct {
	Method string   // GET, POST, PUT
	URL    *url.URL // on Config.Base's scheme, host and port
	Body   []byte   // a JSON body, sent as application/json; nil for none
	Key    string   // handed to the hooks, e.g. the organization
	Scope  string   // token scope the endpoint needs, named by 403 errors whose message names none
}

// Response is a 2xx answer as a handler sees it.
type Response struct {
	StatusCode int
	Header     http.Header
	// Body is the whole body, at most Config.MaxBodyBytes. It is only
	// valid until the handler returns.
	Body []byte
}

// New validates cfg and returns a Requester.
func New(cfg Config) (*Requester, error) {
	if cfg.Base == nil || cfg.Token == nil {
		return nil, errors.New("httpapi: Config.Base and Config.Token are required")
	}
	if cfg.MaxBodyBytes < 0 || cfg.MaxRetries < 0 || cfg.RetryBackoff < 0 {
		return nil, errors.New("httpapi: negative MaxBodyBytes, MaxRetries or RetryBackoff")
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = defaultMaxBodyBytes
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = defaultRetryBackoff
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = defaultUserAgent
	}
	if cfg.AuthScheme == "" {
		cfg.AuthScheme = "Bearer"
	}
	if cfg.TokenName == "" {
		cfg.TokenName = "token"
	}
	return &Requester{cfg: cfg, http: newHTTPClient(cfg.Base, cfg.HTTPClient)}, nil
}

// ParseBaseURL validates an API root that will receive a token; see
// safety.ParseBaseURL. Errors name "BaseURL" and never quote raw.
func ParseBaseURL(raw string) (*url.URL, error) { return safety.ParseBaseURL(raw) }

// Base returns the API root. It must not be modified.
func (r *Requester) Base() *url.URL { return r.cfg.Base }

// Endpoint returns Base followed by path, which the caller has escaped
// (url.PathEscape on every segment that comes from data), with query as
// its raw query.
func (r *Requester) Endpoint(path, query string) (*url.URL, error) {
	u, err := url.Parse(r.cfg.Base.String() + path)
	if err != nil {
		return nil, err
	}
	u.RawQuery = query
	return u, nil
}

func newHTTPClient(base *url.URL, given *http.Client) *http.Client {
	var hc http.Client
	if given != nil {
		hc = *given // a copy: the caller's keeps its own redirect policy
	} else {
		// No overall Timeout would bound a body that trickles in forever;
		// two minutes is far beyond any sane answer.
		hc = http.Client{Timeout: 2 * time.Minute}
	}
	if hc.Transport == nil {
		t := safety.NewTransport(&http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true})
		t.ExpectContinueTimeout = time.Second
		t.MaxIdleConnsPerHost = 8 // the page fetchers' connections
		t.MaxResponseHeaderBytes = MaxHeaderBytes
		hc.Transport = t
	}
	next := hc.CheckRedirect
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !safety.SameOrigin(base, req.URL) {
			return errForeignRedirect
		}
		if len(via) > MaxRedirects {
			return errRedirectLoop
		}
		if next != nil {
			if err := next(req, via); err != nil {
				return err
			}
		}
		if n, ok := req.Context().Value(redirectsKey{}).(*int); ok {
			*n = len(via) // the redirect about to be sent is request len(via)+1
		}
		return nil
	}
	return &hc
}

type redirectsKey struct{}

// Do sends req, retrying 5xx answers and transport errors while the
// context allows, and hands a 2xx answer to handle (nil: any 2xx is
// success). handle runs again from scratch if a retry follows a body cut
// short; its error is returned, wrapped with the method and path, and is
// not retried. Do returns the requests sent, retries and redirects
// included, also with an error. No error holds the token.
func (r *Requester) Do(ctx context.Context, req Request, handle func(*Response) error) (requests int, err error) {
	if !safety.SameOrigin(r.cfg.Base, req.URL) {
		return 0, fmt.Errorf("%w: %s is not on %s", ErrUnsafeLink, safety.SafeURL(req.URL.String()), r.cfg.Base.Host)
	}
	backoff := r.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		n, retry, err := r.attempt(ctx, req, handle)
		requests += n
		if err == nil || !retry || attempt >= r.cfg.MaxRetries {
			return requests, err
		}
		wait := jitter(backoff)
		backoff = min(2*backoff, maxRetryBackoff)
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return requests, err // no time to wait and try again: the last answer is the better error
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return requests, err
		case <-t.C:
		}
	}
}

// jitter returns a random duration in [d/2, d), so that requests that
// failed together do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	if d < 2 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

// attempt sends req once. retry reports whether the error is worth
// another attempt.
func (r *Requester) attempt(ctx context.Context, req Request, handle func(*Response) error) (requests int, retry bool, err error) {
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("%s %s: %w", req.Method, req.URL.EscapedPath(), err)
	}
	if r.cfg.Gate != nil {
		if err := r.cfg.Gate(req.Key); err != nil {
			return 0, false, err
		}
	}
	tok, err := r.cfg.Token()
	if err == nil {
		err = safety.CheckToken(tok)
	}
	if err != nil {
		return 0, false, fmt.Errorf("%s: %w", r.cfg.TokenName, err)
	}
	// The server may echo the token into what errors quote (a Location,
	// a message, a path): no error leaves with it.
	defer func() { err = safety.RedactError(err, tok) }()
	redirects := 0
	hreq, err := r.newRequest(context.WithValue(ctx, redirectsKey{}, &redirects), req, tok)
	if err != nil {
		return 0, false, safety.SanitizeTransportError(err, tok)
	}
	resp, err := r.http.Do(hreq)
	requests = 1 + redirects
	if err != nil {
		r.observe(req.Key, 0)
		err = safety.SanitizeTransportError(err, tok)
		stop := ctx.Err() != nil || errors.Is(err, errForeignRedirect) || errors.Is(err, errRedirectLoop) || headersTooLarge(err)
		return requests, !stop, err
	}
	defer safety.DrainClose(resp.Body, maxDrainBytes)
	if r.cfg.Header != nil {
		r.cfg.Header(req.Key, resp.StatusCode, resp.Header)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		r.observe(req.Key, resp.StatusCode)
		return requests, resp.StatusCode >= 500, newAPIError(req, resp, tok)
	}
	if handle != nil {
		retry, err = r.handleOK(ctx, req, resp, tok, handle)
	}
	// After the handler, so that what it learned (the organization of an
	// Agent Metrics answer) can name this very request.
	r.observe(req.Key, resp.StatusCode)
	return requests, retry, err
}

func (r *Requester) newRequest(ctx context.Context, req Request, tok string) (*http.Request, error) {
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hreq, err := http.NewRequestWithContext(ctx, req.Method, req.URL.String(), body)
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Authorization", r.cfg.AuthScheme+" "+tok)
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", r.cfg.UserAgent)
	if req.Body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	return hreq, nil
}

func (r *Requester) observe(key string, code int) {
	if r.cfg.Observe != nil {
		r.cfg.Observe(key, code)
	}
}

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (r *Requester) handleOK(ctx context.Context, req Request, resp *http.Response, tok string, handle func(*Response) error) (retry bool, err error) {
	what := req.Method + " " + req.URL.EscapedPath()
	limit := r.cfg.MaxBodyBytes
	if resp.ContentLength > limit {
		return false, fmt.Errorf("%w: %s: response body of %d bytes exceeds the limit of %d", ErrMalformed, what, resp.ContentLength, limit)
	}
	if err := checkContentType(resp.Header.Get("Content-Type"), tok); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	buf := bufferPool.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= maxPooledBuffer {
			buf.Reset()
			bufferPool.Put(buf)
		}
	}()
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	switch {
	case ctx.Err() != nil:
		return false, fmt.Errorf("%s: %w", what, ctx.Err())
	case err != nil:
		// The connection broke mid-body: as good as a transport error.
		return true, fmt.Errorf("%w: %s: reading the response body: %s", ErrMalformed, what, safety.Redact(err.Error(), tok))
	case int64(buf.Len()) > limit:
		return false, fmt.Errorf("%w: %s: response body exceeds %d bytes", ErrMalformed, what, limit)
	}
	if err := handle(&Response{StatusCode: resp.StatusCode, Header: resp.Header, Body: buf.Bytes()}); err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return false, nil
}

// checkContentType accepts application/json (or GraphQL's
// application/graphql-response+json), with a UTF-8 (or ASCII) charset if
// any.
func checkContentType(ct, tok string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == "application/graphql-response+json") {
		switch strings.ToLower(params["charset"]) {
		case "", "utf-8", "utf8", "us-ascii":
			return nil
		}
	}
	return fmt.Errorf("%w: content type %q, want application/json", ErrMalformed, safety.SanitizeMessage(ct, tok))
}

// headersTooLarge reports net/http's refusal of response headers over
// MaxResponseHeaderBytes (it has no sentinel error): the server would send
// them again, so a retry only costs requests and time.
func headersTooLarge(err error) bool {
	return strings.Contains(err.Error(), "server response headers exceeded")
}
