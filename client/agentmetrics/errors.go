package agentmetrics

import (
	"fmt"
	"net/http"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

// Error is an answer other than 2xx from the Agent Metrics API. It wraps
// exactly one of client's sentinels: ErrUnauthorized (401), ErrForbidden
// (403), ErrNotFound (404), ErrRateLimited (429), ErrServer (5xx),
// ErrRejected (other 4xx) or ErrMalformed (anything else).
type Error struct {
	StatusCode int
	Message    string // the server's "message", sanitized and shortened
	Path       string // request path without host or query
	// PollDuration is the answer's Buildkite-Agent-Metrics-Poll-Duration,
	// 0 when it had none.
	PollDuration time.Duration
	kind         error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("GET %s: HTTP %d: %v", e.Path, e.StatusCode, e.kind)
	if e.StatusCode == http.StatusUnauthorized {
		msg = fmt.Sprintf("GET %s: HTTP %d: unauthorized: the agent token is missing, invalid or revoked", e.Path, e.StatusCode)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Unwrap returns the client sentinel.
func (e *Error) Unwrap() error { return e.kind }

func newError(ae *httpapi.APIError) *Error {
	return &Error{
		StatusCode:   ae.StatusCode,
		Message:      ae.Message,
		Path:         ae.Path,
		PollDuration: ParsePollDuration(ae.Header.Get(PollDurationHeader)),
		kind:         ae.Unwrap(),
	}
}
