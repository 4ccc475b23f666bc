package client

import (
	"errors"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxMessageRunes bounds server text copied into errors: enough for any
// Buildkite message, too little for an HTML error page to flood a log.
const maxMessageRunes = 200

const redacted = "[REDACTED]"

// sanitizeMessage makes server-supplied text safe to put in an error or a
// log line: valid UTF-8, no control characters (white space ones become a
// space), runs of spaces collapsed, the token redacted wherever it appears,
// and at most maxMessageRunes runes.
func sanitizeMessage(s, token string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(min(len(s), 4*maxMessageRunes))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) { // Cf: bidi overrides and the like
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		// Keep going a little past the limit so that a token straddling
		// it is still found whole by the redaction below.
		if b.Len() > 8*maxMessageRunes+2*len(token) {
			break
		}
	}
	s = redact(b.String(), token)
	if utf8.RuneCountInString(s) > maxMessageRunes {
		n := 0
		for i := range s {
			if n == maxMessageRunes {
				s = s[:i] + "…"
				break
			}
			n++
		}
	}
	return s
}

// redact removes every occurrence of the token.
func redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, redacted)
}

// safeURL renders u for an error message: scheme, host and path only. The
// client never puts the token in a URL, but a URL from a Link header or a
// redirect could carry anything in its query or user info.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return v.String()
}

// sanitizeTransportError rebuilds the *url.Error that http.Client returns
// so that its URL is reduced by safeURL and its cause's text has the token
// redacted (a broken server's bytes can end up quoted in it). The cause
// stays reachable with errors.Is / errors.As (context.DeadlineExceeded,
// net.Error, ...).
func sanitizeTransportError(err error, token string) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return redactError(err, token)
	}
	return &url.Error{Op: ue.Op, URL: redact(safeURL(ue.URL), token), Err: redactError(ue.Err, token)}
}

// redactedError is an error whose text had the token removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redactError(err error, token string) error {
	if err == nil || token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return &redactedError{msg: redact(err.Error(), token), err: err}
}
