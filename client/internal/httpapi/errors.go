package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strings"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"
)

// Sentinel errors; package client re-exports them under the same names.
// Every error a Requester returns for an answer wraps exactly one.
var (
	ErrUnauthorized = errors.New("unauthorized: the API token is missing, invalid or revoked")
	ErrForbidden    = errors.New("forbidden: the API token lacks a required scope or access to the organization")
	ErrNotFound     = errors.New("not found")
	ErrRateLimited  = errors.New("rate limited")
	ErrRejected     = errors.New("request rejected") // 400, 422 and other 4xx
	ErrServer       = errors.New("server error")
	ErrMalformed    = errors.New("malformed response")
	// ErrUnsafeLink: a redirect to another scheme, host or port was
	// refused, so the token never followed it. (The name and text date from
	// when pagination links were checked the same way; the status page and
	// logs match on them.)
	ErrUnsafeLink = errors.New("unsafe pagination link")
)

// errForeignRedirect and errRedirectLoop end a redirect chain; neither is
// retried.
var (
	errForeignRedirect = fmt.Errorf("%w: redirect to another host refused", ErrUnsafeLink)
	errRedirectLoop    = fmt.Errorf("%w: more than %d redirects", ErrMalformed, MaxRedirects)
)

// APIError is an answer other than 2xx.
type APIError struct {
	StatusCode int
	Message    string // the body's "message" (or the body), sanitized and shortened
	Scope      string // on 403: the token scope the message names, else Request.Scope; "" when none
	Method     string
	Path       string // request path without host or query, token redacted
	// LimitScope and Reset are what a 429's body said: which limit is spent
	// ("rest", "rest_user", ...; "" when not said) and the seconds until it
	// resets (-1 when not said).
	LimitScope string
	Reset      int
	// Header holds the answer's headers, for the rate-limit headers of a
	// 429; it is never printed.
	Header http.Header
	kind   error
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d: %v", e.Method, e.Path, e.StatusCode, e.kind)
	if e.Scope != "" {
		msg += fmt.Sprintf(" (the token needs the %s scope)", e.Scope)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Unwrap returns the sentinel of the status code.
func (e *APIError) Unwrap() error { return e.kind }

// maxErrorBodyBytes bounds an error body: Buildkite's are one short object.
const maxErrorBodyBytes = 64 << 10

// errorBody is Buildkite's error answer; 429s add scope and reset.
// GraphQL's carry an errors array instead of a message.
type errorBody struct {
	Message string   `json:"message"`
	Scope   string   `json:"scope"`
	Reset   *float64 `json:"reset"`
	Errors  []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// maxErrorMessages is how many messages of an errors array an APIError
// quotes.
const maxErrorMessages = 3

// message is the body's message, else its first few errors' joined.
func (eb *errorBody) message() string {
	if eb.Message != "" || len(eb.Errors) == 0 {
		return eb.Message
	}
	msgs := make([]string, 0, maxErrorMessages)
	for _, e := range eb.Errors[:min(len(eb.Errors), maxErrorMessages)] {
		msgs = append(msgs, e.Message)
	}
	return strings.Join(msgs, "; ")
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

// newAPIError reads a bounded error body. A body that is not the JSON
// object Buildkite sends (a proxy's HTML page, say) becomes the message.
func newAPIError(req Request, resp *http.Response, tok string) *APIError {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	var eb errorBody
	if err := json.Unmarshal(b, &eb); err != nil {
		eb = errorBody{Message: string(b)}
	}
	e := &APIError{
		StatusCode: resp.StatusCode,
		Message:    safety.SanitizeMessage(eb.message(), tok),
		Method:     req.Method,
		Path:       safety.Redact(req.URL.EscapedPath(), tok),
		LimitScope: safety.SanitizeMessage(eb.Scope, tok),
		Reset:      -1,
		Header:     resp.Header,
		kind:       kindOf(resp.StatusCode),
	}
	if eb.Reset != nil && !math.IsNaN(*eb.Reset) && *eb.Reset >= 0 {
		e.Reset = int(math.Ceil(min(*eb.Reset, math.MaxInt32)))
	}
	if resp.StatusCode == http.StatusForbidden {
		if e.Scope = scopeFrom(e.Message); e.Scope == "" {
			e.Scope = req.Scope
		}
	}
	return e
}

func kindOf(code int) error {
	switch {
	case code == http.StatusUnauthorized:
		return ErrUnauthorized
	case code == http.StatusForbidden:
		return ErrForbidden
	case code == http.StatusNotFound:
		return ErrNotFound
	case code == http.StatusTooManyRequests:
		return ErrRateLimited
	case code >= 500:
		return ErrServer
	case code >= 400:
		return ErrRejected
	default: // 1xx or an unfollowed 3xx: not an answer the APIs give
		return ErrMalformed
	}
}
