package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

// Sentinel errors; test with errors.Is. Every error the client returns for a
// Buildkite answer wraps exactly one of them. The Agent Metrics client
// (package agentmetrics) wraps the same ones.
var (
	ErrUnauthorized = httpapi.ErrUnauthorized
	ErrForbidden    = httpapi.ErrForbidden
	ErrNotFound     = httpapi.ErrNotFound
	ErrRateLimited  = httpapi.ErrRateLimited
	ErrRejected     = httpapi.ErrRejected // the documented 400/422 action errors
	ErrServer       = httpapi.ErrServer
	ErrMalformed    = httpapi.ErrMalformed
	// ErrUnsafeLink: a redirect to another host was refused (the token
	// never follows one). Pagination links no longer cause it: only their
	// page number is used.
	ErrUnsafeLink = httpapi.ErrUnsafeLink
	ErrPageLimit  = errors.New("pagination did not end")
)

// APIError is an error answer from Buildkite (any status but 429, which is
// a *RateLimitError).
type APIError = httpapi.APIError

// Rate-limit scopes, as Buildkite names them in 429 bodies.
const (
	ScopeRest     = "rest"      // the organization's budget
	ScopeRestUser = "rest_user" // the token user's budget, shared by all organizations
)

// RateLimitError says that a REST budget is spent: either Buildkite answered
// 429, or the client refused to send a request inside the window of an
// earlier 429.
type RateLimitError struct {
	Org     string
	Scope   string    // ScopeRest (this organization) or ScopeRestUser (every organization of the token)
	ResetAt time.Time // no request under this budget before then
	Sent    bool      // false when the client refused without a request
	Message string
}

func (e *RateLimitError) Error() string {
	scope := ""
	if e.Scope == ScopeRestUser {
		scope = " (the token's per-user limit, shared by all its organizations)"
	}
	if e.Sent {
		return fmt.Sprintf("rate limited by Buildkite for organization %q until %s%s: %s", e.Org, e.ResetAt.UTC().Format(time.RFC3339), scope, e.Message)
	}
	return fmt.Sprintf("rate limited: no requests for organization %q until %s%s", e.Org, e.ResetAt.UTC().Format(time.RFC3339), scope)
}

func (e *RateLimitError) Unwrap() error { return ErrRateLimited }
