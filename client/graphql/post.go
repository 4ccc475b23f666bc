package graphql

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/internal/httpapi"
)

// post sends one GraphQL operation for org and returns the body of a 200
// answer without errors; *requests counts the requests sent. The shared
// requester (httpapi) sends the token only to c.url's origin, bounds the
// body, checks its content type, redacts errors, counts requests for the
// Observer, hands every answer's headers to the budgets and refuses a
// request inside a 429 window (their Gate). What is GraphQL's own stays
// here: an errors array in a 200 answer. No retry: the next poll is the
// retry.
func (c *Client) post(ctx context.Context, org, operation string, vars map[string]any, requests *int) ([]byte, error) {
	var body []byte
	n, err := c.req.Do(ctx, httpapi.Request{Method: http.MethodPost, URL: c.url, Body: encodeRequest(operation, vars), Key: org},
		func(resp *httpapi.Response) error {
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%w: HTTP %d, want 200", client.ErrMalformed, resp.StatusCode)
			}
			// The requester redacts the token from errors; a 200's errors
			// array is sanitized the same way.
			if msgs := queryErrors(resp.Body, c.currentToken()); len(msgs) > 0 {
				return &QueryError{Org: org, Operation: operation, Messages: msgs}
			}
			body = append([]byte(nil), resp.Body...) // resp.Body is the requester's buffer
			return nil
		})
	*requests += n
	var ae *httpapi.APIError
	if errors.As(err, &ae) {
		return nil, c.statusError(org, ae)
	}
	if err != nil {
		return nil, err // a *QueryError stays in the chain, redacted once more by the requester
	}
	return body, nil
}

// currentToken is the token to redact from a 200's messages before they
// are shortened; "" when it cannot be read now. (Should it have rotated
// since the request, the requester still redacts the one it sent from the
// whole error.)
func (c *Client) currentToken() string {
	tok, err := c.token.Token()
	if err != nil {
		return ""
	}
	return tok
}

// statusError maps an answer other than 2xx to the package's typed errors:
// a 429 closes the budget it spent until its reset.
func (c *Client) statusError(org string, ae *httpapi.APIError) error {
	if ae.StatusCode == http.StatusTooManyRequests {
		return c.budgets.RateLimited(org, ae)
	}
	return &HTTPError{StatusCode: ae.StatusCode, Message: ae.Message, kind: ae.Unwrap()}
}
