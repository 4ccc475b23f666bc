package agentmetrics

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"
)

// Error is an answer other than 200 from the Agent Metrics API. It wraps
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

func (c *Client) apiError(resp *http.Response, path, tok string, poll time.Duration) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	var body struct {
		Message string `json:"message"`
	}
	msg := string(b)
	if json.Unmarshal(b, &body) == nil {
		msg = body.Message
	}
	e := &Error{StatusCode: resp.StatusCode, Message: safety.SanitizeMessage(msg, tok), Path: path, PollDuration: poll}
	switch code := resp.StatusCode; {
	case code == http.StatusUnauthorized:
		e.kind = client.ErrUnauthorized
	case code == http.StatusForbidden:
		e.kind = client.ErrForbidden
	case code == http.StatusNotFound:
		e.kind = client.ErrNotFound
	case code == http.StatusTooManyRequests:
		e.kind = client.ErrRateLimited
	case code >= 500:
		e.kind = client.ErrServer
	case code >= 400:
		e.kind = client.ErrRejected
	default: // 1xx, 2xx other than 200, an unfollowed 3xx
		e.kind = client.ErrMalformed
	}
	return e
}
