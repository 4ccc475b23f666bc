package graphql

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/internal/safety"
)

// post sends one GraphQL operation for org and returns the body of a 200
// answer without errors; *requests counts the requests sent. It is the
// client's only HTTP code: the token is checked and sent only to c.url,
// every answer's rate-limit headers are kept, bodies are bounded, and every
// error has the token redacted. No retry: the next poll is the retry.
func (c *Client) post(ctx context.Context, org, operation string, vars map[string]any, requests *int) ([]byte, error) {
	if err := c.gate(org); err != nil {
		return nil, err
	}
	tok, err := c.token.Token()
	if err == nil {
		err = safety.CheckToken(tok)
	}
	if err != nil {
		return nil, fmt.Errorf("API token: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url.String(), bytes.NewReader(encodeRequest(operation, vars)))
	if err != nil {
		return nil, safety.SanitizeTransportError(err, tok)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	*requests++
	resp, err := c.http.Do(req)
	if err != nil {
		c.observe(org, 0)
		return nil, safety.SanitizeTransportError(err, tok)
	}
	defer safety.DrainClose(resp.Body, maxDrainBytes)
	c.observe(org, resp.StatusCode)

	limit := c.maxBytes
	if resp.StatusCode != http.StatusOK {
		limit = maxErrorBodyBytes
	}
	b, readErr := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	var rateLimited *RateLimitError
	if resp.StatusCode != http.StatusOK {
		err = statusError(org, resp.StatusCode, resp.Header, b, tok, c.now())
		errors.As(err, &rateLimited)
	}
	c.recordHeaders(org, resp.Header, rateLimited)
	switch {
	case err != nil:
		return nil, err
	case readErr != nil:
		return nil, fmt.Errorf("%w: reading the response body: %s", client.ErrMalformed, safety.Redact(readErr.Error(), tok))
	case int64(len(b)) > limit:
		return nil, fmt.Errorf("%w: response body exceeds %d bytes", client.ErrMalformed, limit)
	}
	if err := checkContentType(resp.Header.Get("Content-Type"), tok); err != nil {
		return nil, err
	}
	if msgs := queryErrors(b, tok); len(msgs) > 0 {
		return nil, &QueryError{Org: org, Operation: operation, Messages: msgs}
	}
	return b, nil
}

// checkContentType accepts JSON (application/json, or GraphQL's own
// application/graphql-response+json) with a UTF-8 (or no) charset.
func checkContentType(ct, tok string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || mt == "application/graphql-response+json") {
		switch params["charset"] {
		case "", "utf-8", "UTF-8", "utf8":
			return nil
		}
	}
	return fmt.Errorf("%w: content type %q, want application/json", client.ErrMalformed, safety.SanitizeMessage(ct, tok))
}
