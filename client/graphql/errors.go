package graphql

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"
)

// ErrQuery is wrapped by a *QueryError: Buildkite answered 200 with an
// errors array (an unknown organization, a token without GraphQL access, a
// query it refused, ...).
var ErrQuery = errors.New("GraphQL query failed")

// A 429 that names no reset closes its budget for five minutes, a GraphQL
// window.
const defaultRateLimitReset = 300

// maxQueryMessages is how many messages of an errors array a QueryError
// quotes.
const maxQueryMessages = 3

// QueryError is a 200 answer whose errors array was not empty.
type QueryError struct {
	Org       string
	Operation string   // QueueMetrics or ClusterQueues
	Messages  []string // the first few messages, sanitized and shortened
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("%s: GraphQL %s for organization %q: %s", ErrQuery, e.Operation, e.Org, strings.Join(e.Messages, "; "))
}

// Unwrap returns ErrQuery.
func (e *QueryError) Unwrap() error { return ErrQuery }

// HTTPError is an answer other than 200 and 429. It wraps exactly one of
// client's sentinels: ErrUnauthorized (401), ErrForbidden (403), ErrNotFound
// (404), ErrServer (5xx), ErrRejected (other 4xx) or ErrMalformed (anything
// else).
type HTTPError struct {
	StatusCode int
	Message    string // the first error message of the body, sanitized and shortened
	kind       error
}

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("POST GraphQL: HTTP %d: %v", e.StatusCode, e.kind)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Unwrap returns the client sentinel.
func (e *HTTPError) Unwrap() error { return e.kind }

// RateLimitError says that a GraphQL complexity budget is spent: Buildkite
// answered 429 (Sent), or the client refused to send a request inside the
// window of an earlier 429.
type RateLimitError struct {
	Org     string
	Scope   string    // ScopeGraphQL (this organization) or ScopeGraphQLUser (every organization of the token)
	ResetAt time.Time // no request under this budget before then
	Sent    bool
	Message string
}

func (e *RateLimitError) Error() string {
	what := "GraphQL rate limited"
	if e.Sent {
		what = "GraphQL rate limited by Buildkite"
	}
	msg := fmt.Sprintf("%s for organization %q (scope %s) until %s", what, e.Org, e.Scope, e.ResetAt.UTC().Format(time.RFC3339))
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Unwrap returns client.ErrRateLimited.
func (e *RateLimitError) Unwrap() error { return client.ErrRateLimited }

// errorBody is the shape of a GraphQL answer's errors array.
type errorBody struct {
	Errors []struct {
		Message string `json:"message"`
	} `json:"errors"`
}

// queryErrors returns the first few messages of a 200 answer's errors
// array, sanitized; none when it has no such array (or is no JSON object,
// which decoding reports).
func queryErrors(b []byte, tok string) []string {
	var eb errorBody
	if json.Unmarshal(b, &eb) != nil || len(eb.Errors) == 0 {
		return nil
	}
	var out []string
	for _, e := range eb.Errors[:min(len(eb.Errors), maxQueryMessages)] {
		msg := safety.SanitizeMessage(e.Message, tok)
		if msg == "" {
			msg = "(no message)"
		}
		out = append(out, msg)
	}
	return out
}
