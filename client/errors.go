package client

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors; test with errors.Is. Every error the client returns for a
// Buildkite answer wraps exactly one of them.
var (
	ErrUnauthorized = errors.New("unauthorized: the API token is missing, invalid or revoked")
	ErrForbidden    = errors.New("forbidden: the API token lacks a required scope or access to the organization")
	ErrNotFound     = errors.New("not found")
	ErrRateLimited  = errors.New("rate limited")
	ErrRejected     = errors.New("request rejected") // the documented 400/422 action errors
	ErrServer       = errors.New("server error")
	ErrMalformed    = errors.New("malformed response")
	ErrUnsafeLink   = errors.New("unsafe pagination link")
	ErrPageLimit    = errors.New("pagination did not end")
)

// APIError is an error answer from Buildkite (any status but 429).
type APIError struct {
	StatusCode int
	Message    string // Buildkite's "message", sanitized and shortened
	Scope      string // on 403: the scope the message names, e.g. read_agents; "" when none
	Method     string
	Path       string // request path without host or query
	kind       error
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

func (e *APIError) Unwrap() error { return e.kind }

// RateLimitError says that the organization's rate limit is spent: either
// Buildkite answered 429, or the client refused to send a request inside the
// window of an earlier 429.
type RateLimitError struct {
	Org     string
	ResetAt time.Time // no request to this organization before then
	Sent    bool      // false when the client refused without a request
	Message string
}

func (e *RateLimitError) Error() string {
	if e.Sent {
		return fmt.Sprintf("rate limited by Buildkite for organization %q until %s: %s", e.Org, e.ResetAt.UTC().Format(time.RFC3339), e.Message)
	}
	return fmt.Sprintf("rate limited: no requests for organization %q until %s", e.Org, e.ResetAt.UTC().Format(time.RFC3339))
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }
