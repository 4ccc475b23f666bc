package safety

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testToken = "bkua_0123456789abcdef0123456789abcdef01234567"

func TestSanitizeMessage(t *testing.T) {
	long := strings.Repeat("é", 500)
	if got := SanitizeMessage(long, ""); len([]rune(got)) != MaxMessageRunes+1 || !strings.HasSuffix(got, "…") {
		t.Fatalf("not truncated: %d runes", len([]rune(got)))
	}
	// The token straddling the cut is still redacted.
	s := strings.Repeat("x", MaxMessageRunes-5) + testToken
	if got := SanitizeMessage(s, testToken); strings.Contains(got, testToken[:10]) {
		t.Fatalf("token prefix left: %q", got)
	}
	// Control characters inside the echoed token do not defeat redaction.
	split := testToken[:5] + "\x00" + testToken[5:]
	if got := SanitizeMessage(split, testToken); strings.Contains(got, testToken) {
		t.Fatalf("token left: %q", got)
	}
	if got := SanitizeMessage("a\u202eb\tc\n\nd", ""); got != "ab c d" {
		t.Fatalf("got %q", got)
	}
	if got := SanitizeMessage("  lead \xff trail  ", ""); got != "lead \uFFFD trail" {
		t.Fatalf("got %q", got)
	}
	if got := SanitizeMessage(strings.Repeat("a", MaxMessageRunes), ""); len(got) != MaxMessageRunes {
		t.Fatalf("exactly MaxMessageRunes runes changed: %q", got)
	}
}

func TestCheckToken(t *testing.T) {
	for _, tc := range []struct {
		tok  string
		want error
	}{
		{testToken, nil},
		{"", ErrEmptyToken},
		{"a b", ErrInvalidToken},
		{"abc\n", ErrInvalidToken},
		{"abc\r\nX-Evil: 1", ErrInvalidToken},
		{"abc\x7f", ErrInvalidToken},
		{"tökén", ErrInvalidToken},
	} {
		if err := CheckToken(tc.tok); err != tc.want { //nolint:errorlint // the sentinel itself
			t.Errorf("CheckToken(%q) = %v, want %v", tc.tok, err, tc.want)
		}
	}
	// Callers prefix their own name for the token.
	if got := fmt.Errorf("API token: %w", ErrEmptyToken).Error(); got != "API token: empty" {
		t.Errorf("got %q", got)
	}
	if got := fmt.Errorf("agent token: %w", ErrInvalidToken).Error(); got != "agent token: contains white space, control or non-ASCII characters" {
		t.Errorf("got %q", got)
	}
}

func TestSameOrigin(t *testing.T) {
	base := &url.URL{Scheme: "https", Host: "api.buildkite.com", Path: "/v2"}
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{"https://api.buildkite.com/v2/organizations", true},
		{"HTTPS://API.Buildkite.COM/other", true},
		{"https://api.buildkite.com:443/v2", true},
		{"http://api.buildkite.com/v2", false},
		{"https://api.buildkite.com:8443/v2", false},
		{"https://evil.example/v2", false},
		{"https://api.buildkite.com.evil.example/v2", false},
		{"https://user:pass@api.buildkite.com/v2", false},
		{"https://user@api.buildkite.com/v2", false},
	} {
		u, err := url.Parse(tc.raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := SameOrigin(base, u); got != tc.want {
			t.Errorf("SameOrigin(%s) = %v, want %v", tc.raw, got, tc.want)
		}
	}
	if SameOrigin(base, nil) {
		t.Error("nil URL is the same origin")
	}
	plain := &url.URL{Scheme: "http", Host: "127.0.0.1:80"}
	if !SameOrigin(plain, &url.URL{Scheme: "http", Host: "127.0.0.1"}) {
		t.Error("http default port 80 not matched")
	}
}

func TestRedact(t *testing.T) {
	if got := Redact("a "+testToken+" b "+testToken, testToken); got != "a "+Redacted+" b "+Redacted {
		t.Errorf("got %q", got)
	}
	if got := Redact("a b", ""); got != "a b" {
		t.Errorf("empty token: got %q", got)
	}
}

func TestRedactError(t *testing.T) {
	if RedactError(nil, testToken) != nil {
		t.Error("nil error not kept")
	}
	clean := errors.New("no secret here")
	if got := RedactError(clean, testToken); got != clean { //nolint:errorlint // identity is the point
		t.Errorf("clean error replaced: %v", got)
	}
	leaky := fmt.Errorf("echoed %s: %w", testToken, context.DeadlineExceeded)
	if got := RedactError(leaky, ""); got != leaky { //nolint:errorlint // identity is the point
		t.Errorf("empty token: error replaced: %v", got)
	}
	got := RedactError(leaky, testToken)
	if strings.Contains(got.Error(), testToken) || got.Error() != "echoed "+Redacted+": context deadline exceeded" {
		t.Errorf("got %q", got)
	}
	if !errors.Is(got, context.DeadlineExceeded) || !errors.Is(got, leaky) {
		t.Error("cause not reachable")
	}
}

func TestSafeURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://u:p@api.buildkite.com/v2/x?token=secret#frag": "https://api.buildkite.com/v2/x",
		"http://h:8080/a%2Fb": "http://h:8080/a%2Fb",
		"https://h/\x00":      "(invalid URL)",
	} {
		if got := SafeURL(raw); got != want {
			t.Errorf("SafeURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestSanitizeTransportError(t *testing.T) {
	cause := fmt.Errorf("bad response %q: %w", testToken, context.DeadlineExceeded)
	err := SanitizeTransportError(&url.Error{
		Op:  "Get",
		URL: "https://u:p@h/" + testToken + "?q=secret",
		Err: cause,
	}, testToken)
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("not a *url.Error: %T", err)
	}
	if ue.Op != "Get" || ue.URL != "https://h/"+Redacted {
		t.Errorf("url.Error = %+v", ue)
	}
	if s := err.Error(); strings.Contains(s, testToken) || strings.Contains(s, "secret") || strings.Contains(s, "u:p") {
		t.Errorf("leaks: %q", s)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("cause not reachable")
	}
	// Not a *url.Error: only redacted.
	plain := errors.New("x " + testToken)
	if got := SanitizeTransportError(plain, testToken); got.Error() != "x "+Redacted || !errors.Is(got, plain) {
		t.Errorf("got %v", got)
	}
}

type body struct {
	io.Reader
	closed bool
}

func (b *body) Close() error { b.closed = true; return nil }

func TestDrainClose(t *testing.T) {
	r := strings.NewReader(strings.Repeat("x", 100))
	b := &body{Reader: r}
	DrainClose(b, 30)
	if !b.closed {
		t.Error("not closed")
	}
	if r.Len() != 70 {
		t.Errorf("read %d bytes, want 30", 100-r.Len())
	}
}

func TestNewTransport(t *testing.T) {
	fallback := &http.Transport{}
	tr := NewTransport(fallback)
	if _, ok := http.DefaultTransport.(*http.Transport); ok && tr == fallback {
		t.Error("fallback used although http.DefaultTransport is an *http.Transport")
	}
	if tr == http.DefaultTransport {
		t.Error("http.DefaultTransport modified instead of cloned")
	}
	if tr.Proxy == nil {
		t.Error("proxy settings lost")
	}
	if tr.DialContext == nil || tr.TLSHandshakeTimeout != 10*time.Second ||
		tr.ResponseHeaderTimeout != 30*time.Second || tr.IdleConnTimeout != 90*time.Second {
		t.Errorf("timeouts not set: %+v", tr)
	}

	saved := http.DefaultTransport
	t.Cleanup(func() { http.DefaultTransport = saved })
	http.DefaultTransport = http.NewFileTransport(http.Dir(t.TempDir()))
	if got := NewTransport(fallback); got != fallback || fallback.ResponseHeaderTimeout != 30*time.Second {
		t.Error("fallback not used or not configured")
	}
}

func TestParseBaseURL(t *testing.T) {
	u, err := ParseBaseURL("HTTPS://API.Buildkite.com/v2/")
	if err != nil || u.String() != "https://api.buildkite.com/v2" {
		t.Fatalf("got %v, %v", u, err)
	}
	for raw, want := range map[string]string{
		"ftp://x/v2":               "BaseURL must be an http or https URL",
		"/v2":                      "BaseURL must be an http or https URL",
		"https:///v2":              "BaseURL has no host",
		"https:opaque":             "BaseURL has no host",
		"https://u:secretpw@x/v2":  "BaseURL must not contain credentials",
		"https://x/v2?a=b":         "BaseURL must not have a query or fragment",
		"https://x/v2?":            "BaseURL must not have a query or fragment",
		"https://x/v2#f":           "BaseURL must not have a query or fragment",
		"https://secretpw@x/%zz":   `invalid BaseURL: invalid URL escape "%zz"`,
		"https://u:secretpw@x:y/v": `invalid BaseURL: invalid port ":y" after host`,
	} {
		_, err := ParseBaseURL(raw)
		if err == nil || err.Error() != want {
			t.Errorf("ParseBaseURL(%q) = %v, want %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secretpw") {
			t.Errorf("ParseBaseURL(%q) quotes the URL: %v", raw, err)
		}
	}
}

func TestRedirectPolicy(t *testing.T) {
	base := &url.URL{Scheme: "https", Host: "api.buildkite.com"}
	foreign := errors.New("foreign")
	req := func(raw string) *http.Request {
		r, err := http.NewRequest(http.MethodGet, raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	via := make([]*http.Request, 3)
	check := RedirectPolicy(base, nil, 3, foreign)
	if err := check(req("https://evil.example/"), nil); err != foreign { //nolint:errorlint // the sentinel itself
		t.Errorf("foreign redirect: %v", err)
	}
	if err := check(req("https://api.buildkite.com/x"), via[:2]); err != nil {
		t.Errorf("same-origin redirect: %v", err)
	}
	if err := check(req("https://api.buildkite.com/x"), via); err == nil || err.Error() != "stopped after 3 redirects" {
		t.Errorf("too many redirects: %v", err)
	}
	mine := errors.New("mine")
	check = RedirectPolicy(base, func(*http.Request, []*http.Request) error { return mine }, 3, foreign)
	if err := check(req("https://api.buildkite.com/x"), nil); err != mine { //nolint:errorlint // the sentinel itself
		t.Errorf("caller's policy not used: %v", err)
	}
	if err := check(req("http://api.buildkite.com/x"), nil); err != foreign { //nolint:errorlint // the sentinel itself
		t.Errorf("caller's policy asked about a foreign redirect: %v", err)
	}
}
