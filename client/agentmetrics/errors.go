package agentmetrics

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/buildkite-exporter/buildkite_exporter/client"
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
	e := &Error{StatusCode: resp.StatusCode, Message: sanitizeMessage(msg, tok), Path: path, PollDuration: poll}
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

// maxMessageRunes bounds server text copied into errors.
const maxMessageRunes = 200

const redacted = "[REDACTED]"

// sanitizeMessage makes server text fit for an error or a log line: valid
// UTF-8, no control characters, white space collapsed, the token redacted,
// at most maxMessageRunes runes.
func sanitizeMessage(s, token string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if b.Len() > 8*maxMessageRunes+2*len(token) {
			break // enough; keep a token straddling the limit whole for redaction
		}
	}
	s = redact(b.String(), token)
	if utf8.RuneCountInString(s) > maxMessageRunes {
		n := 0
		for i := range s {
			if n == maxMessageRunes {
				return s[:i] + "…"
			}
			n++
		}
	}
	return s
}

func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, redacted)
}

// sanitizeTransportError reduces the URL of a *url.Error to scheme, host
// and path, and removes the token from its text (a server may echo it into
// a redirect's Location); the cause stays reachable with errors.Is /
// errors.As.
func sanitizeTransportError(err error, tok string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		safe := "(invalid URL)"
		if u, perr := url.Parse(ue.URL); perr == nil {
			safe = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}).String()
		}
		return &url.Error{Op: ue.Op, URL: redact(safe, tok), Err: redactError(ue.Err, tok)}
	}
	return redactError(err, tok)
}

// redactedError is an error whose text had the token removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactError(err error, tok string) error {
	if err == nil || tok == "" || !strings.Contains(err.Error(), tok) {
		return err
	}
	return &redactedError{msg: redact(err.Error(), tok), err: err}
}
