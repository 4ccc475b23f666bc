package buildkitetest

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Fault changes how the fake answers matching requests. The first injected fault
// that matches (and has hits left) applies; its fields combine, e.g. Delay with
// Truncate. A Status fault answers without touching the fake's state, so a faulted
// stop does not stop the agent.
type Fault struct {
	Match func(r *http.Request) bool // nil: every request; called without the fake's lock held
	Times int                        // how many matching requests it hits; 0 = all

	Delay time.Duration // wait (respecting the request context) before answering

	Status int    // answer this status instead of handling the request
	Body   string // with this body; "" means {"message": <status text>}

	// Truncate sends the real body cut in half while Content-Length announces all
	// of it, then closes the connection: the client reads io.ErrUnexpectedEOF.
	Truncate bool
	// Malformed sends syntactically invalid JSON (a trailing comma before the
	// closing bracket) with a consistent Content-Length.
	Malformed bool
	// ContentType overrides the Content-Type header.
	ContentType string
	// OversizeBytes pads the body with whitespace before its closing bracket to
	// at least this many bytes: still valid JSON with the same content. The
	// padding is streamed, so large values cost no memory.
	OversizeBytes int64
	// NextLink replaces the URL of rel="next" in the Link header (adding the
	// entry when there is none).
	NextLink string
	// LinkHeader replaces the whole Link header; "-" removes it.
	LinkHeader string
	// CloseConnection hijacks the connection and closes it without answering.
	CloseConnection bool
}

// MatchPath matches requests whose URL path contains substr.
func MatchPath(substr string) func(*http.Request) bool {
	return func(r *http.Request) bool { return strings.Contains(r.URL.Path, substr) }
}

// MatchPage matches list requests (GET .../agents) for page N; a missing or
// invalid page parameter is page 1, as the fake reads it.
func MatchPage(page int) func(*http.Request) bool {
	return func(r *http.Request) bool {
		if r.Method != http.MethodGet {
			return false
		}
		rt, ok := parseRoute(r.URL.Path)
		return ok && rt.kind == routeList && parsePage(r.URL.Query().Get("page")) == page
	}
}

// MatchMethod matches requests with the given HTTP method.
func MatchMethod(method string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method }
}

type faultEntry struct {
	Fault
	left    int // hits left; -1 = unlimited
	removed bool
}

// apply rewrites a built response as the fault says.
func (ft *Fault) apply(resp *response) {
	if ft.LinkHeader == "-" {
		resp.header.Del("Link")
	} else if ft.LinkHeader != "" {
		resp.header.Set("Link", ft.LinkHeader)
	}
	if ft.NextLink != "" {
		resp.header.Set("Link", replaceNext(resp.header.Get("Link"), ft.NextLink))
	}
	if ft.Malformed {
		b := resp.body
		if n := len(b); n > 0 && (b[n-1] == ']' || b[n-1] == '}') {
			resp.body = append(append(bytes.Clone(b[:n-1]), ','), b[n-1])
		} else {
			resp.body = []byte("{")
		}
	}
	if ft.OversizeBytes > int64(len(resp.body)) {
		resp.pad = ft.OversizeBytes - int64(len(resp.body))
	}
	resp.truncate = ft.Truncate
	if ft.ContentType != "" {
		resp.header.Set("Content-Type", ft.ContentType)
	}
}

var nextRel = regexp.MustCompile(`<[^>]*>;\s*rel="next"`)

func replaceNext(link, next string) string {
	entry := "<" + next + `>; rel="next"`
	if nextRel.MatchString(link) {
		return nextRel.ReplaceAllLiteralString(link, entry)
	}
	if link == "" {
		return entry
	}
	return entry + ", " + link
}

// faultResponse is the answer of a Status fault.
func faultResponse(ft *Fault, resp *response) {
	resp.status = ft.Status
	if ft.Body != "" {
		resp.body = []byte(ft.Body)
	} else {
		resp.body = messageBody(http.StatusText(ft.Status))
	}
	resp.header.Set("Content-Type", jsonContentType)
	if ft.Status == http.StatusNoContent || ft.Status == http.StatusNotModified {
		resp.body = nil
	}
}
