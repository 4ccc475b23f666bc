// Package safety holds the token hygiene that the Buildkite REST client
// (package client) and the Agent Metrics client (package
// client/agentmetrics) share: which URLs may receive a token, which tokens
// may go in a header, how server text and transport errors are made fit to
// quote, and how a response body is given back for connection reuse.
//
// Nothing here knows which API or which token it protects: callers add their
// own wording (for example "API token: " or "agent token: ") around the
// errors returned.
package safety

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces the token wherever it appears in text that leaves a
// client.
const Redacted = "[REDACTED]"

// MaxMessageRunes bounds server text copied into errors: enough for any
// Buildkite message, too little for an HTML error page to flood a log.
const MaxMessageRunes = 200

// Sentinels of CheckToken. Their text is meant to follow the caller's name
// for the token, as in fmt.Errorf("API token: %w", err).
var (
	ErrEmptyToken   = errors.New("empty")
	ErrInvalidToken = errors.New("contains white space, control or non-ASCII characters")
)

// CheckToken rejects tokens that cannot be sent in a header as they are:
// ErrEmptyToken for "", ErrInvalidToken for one holding white space, a
// control character or a byte outside printable ASCII. Without it net/http
// would refuse the request with an error of its own, and a token with a
// newline could split the header.
func CheckToken(token string) error {
	if token == "" {
		return ErrEmptyToken
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c <= ' ' || c >= 0x7f {
			return ErrInvalidToken
		}
	}
	return nil
}

// ParseBaseURL validates an API root that will receive a token: http or
// https with a host, and no credentials, query or fragment. It returns the
// root with scheme and host lower-cased and no trailing slash. Its errors
// name "BaseURL" and never quote raw, which could hold credentials; callers
// prefix their package, as in fmt.Errorf("client: %w", err).
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// Not err itself: *url.Error quotes the URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid BaseURL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return nil, errors.New("BaseURL must be an http or https URL")
	case u.Opaque != "" || u.Hostname() == "":
		return nil, errors.New("BaseURL has no host")
	case u.User != nil:
		return nil, errors.New("BaseURL must not contain credentials")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, errors.New("BaseURL must not have a query or fragment")
	}
	return &url.URL{
		Scheme:  scheme,
		Host:    strings.ToLower(u.Host),
		Path:    strings.TrimRight(u.Path, "/"),
		RawPath: strings.TrimRight(u.RawPath, "/"),
	}, nil
}

// RedirectPolicy returns an http.Client CheckRedirect that refuses, with
// foreign, any redirect that is not SameOrigin with base, so that the
// Authorization header never follows it. Other redirects go to next, the
// caller's own policy, or when next is nil are followed up to maxRedirects
// times.
func RedirectPolicy(base *url.URL, next func(*http.Request, []*http.Request) error, maxRedirects int, foreign error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !SameOrigin(base, req.URL) {
			return foreign
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		return nil
	}
}

// SameOrigin reports whether u may receive a token meant for base: the same
// scheme, host and effective port (443 for https, 80 otherwise, when none is
// given), compared case-insensitively, and no user info of its own. A nil u
// is not the same origin; base must not be nil.
func SameOrigin(base, u *url.URL) bool {
	return u != nil && u.User == nil &&
		strings.EqualFold(u.Scheme, base.Scheme) &&
		strings.EqualFold(u.Hostname(), base.Hostname()) &&
		effectivePort(u) == effectivePort(base)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// Redact replaces every occurrence of token in s with Redacted. An empty
// token leaves s as it is.
func Redact(s, token string) string {
	if token == "" {
		return s
	}
	return strings.ReplaceAll(s, token, Redacted)
}

// RedactError returns err unchanged when its text does not contain token
// (or err is nil, or token is empty), and otherwise an error whose text is
// err's with the token redacted and which unwraps to err, so errors.Is and
// errors.As still see the cause.
func RedactError(err error, token string) error {
	if err == nil || token == "" || !strings.Contains(err.Error(), token) {
		return err
	}
	return &redactedError{msg: Redact(err.Error(), token), err: err}
}

// redactedError is an error whose text had the token removed.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// SafeURL renders raw for an error message: scheme, host and path only, or
// "(invalid URL)" when it does not parse. The clients never put the token in
// a URL, but a URL from a Link header or a redirect could carry anything in
// its query or user info.
func SafeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return v.String()
}

// SanitizeTransportError rebuilds the *url.Error that http.Client returns
// so that its URL is reduced by SafeURL and its text has the token redacted
// (a server may echo it into a redirect's Location, and a broken server's
// bytes can end up quoted in the cause). The cause stays reachable with
// errors.Is / errors.As (context.DeadlineExceeded, net.Error, ...). An error
// that is no *url.Error goes through RedactError.
func SanitizeTransportError(err error, token string) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return RedactError(err, token)
	}
	return &url.Error{Op: ue.Op, URL: Redact(SafeURL(ue.URL), token), Err: RedactError(ue.Err, token)}
}

// SanitizeMessage makes server-supplied text safe to put in an error or a
// log line: valid UTF-8, no control or format characters (white space ones
// become a space), runs of spaces collapsed, the token redacted wherever it
// appears, and at most MaxMessageRunes runes (then followed by "…").
func SanitizeMessage(s, token string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	b.Grow(min(len(s), 4*MaxMessageRunes))
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
		if b.Len() > 8*MaxMessageRunes+2*len(token) {
			break
		}
	}
	s = Redact(b.String(), token)
	if utf8.RuneCountInString(s) > MaxMessageRunes {
		n := 0
		for i := range s {
			if n == MaxMessageRunes {
				return s[:i] + "…"
			}
			n++
		}
	}
	return s
}

// DrainClose reads at most limit bytes of what is left of body, so that the
// connection can be re-used, then closes it. Beyond the limit closing is
// cheaper than reading on.
func DrainClose(body io.ReadCloser, limit int64) {
	_, _ = io.CopyN(io.Discard, body, limit)
	_ = body.Close()
}

// NewTransport returns a clone of http.DefaultTransport (which keeps its
// proxy settings from the environment) or, when http.DefaultTransport is
// not an *http.Transport, fallback. Either way it sets the timeouts both
// clients want: 10s to dial (with 30s keep-alives), 10s for the TLS
// handshake, 30s for the response headers and 90s for an idle connection.
// Callers may tune the result further.
func NewTransport(fallback *http.Transport) *http.Transport {
	t := fallback
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	}
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	t.IdleConnTimeout = 90 * time.Second
	return t
}
