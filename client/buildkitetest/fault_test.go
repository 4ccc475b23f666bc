package buildkitetest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// get sends an authenticated GET and returns the response with its body read,
// or the error of sending or reading.
func get(s *Server, ctx context.Context, path string) (*http.Response, []byte, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.Client().Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestFaults(t *testing.T) {
	const list = "/organizations/acme/agents?per_page=2"
	tests := []struct {
		name  string
		fault Fault
		check func(t *testing.T, resp *http.Response, body []byte, err error)
	}{
		{"status and body", Fault{Status: 503, Body: "<html>down</html>", ContentType: "text/html"},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if err != nil || resp.StatusCode != 503 || string(body) != "<html>down</html>" || resp.Header.Get("Content-Type") != "text/html" {
					t.Errorf("%v %v %q", err, resp.Status, body)
				}
				if resp.Header.Get("RateLimit-Remaining") == "" {
					t.Error("no rate-limit headers on a fault answer")
				}
			}},
		{"status default body", Fault{Status: 500},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if err != nil || resp.StatusCode != 500 || string(body) != `{"message":"Internal Server Error"}` {
					t.Errorf("%v %v %q", err, resp.Status, body)
				}
			}},
		{"truncate", Fault{Truncate: true},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("err = %v, want unexpected EOF", err)
				}
				if len(body) == 0 || json.Valid(body) {
					t.Errorf("body %q: want a non-empty invalid prefix", body)
				}
			}},
		{"malformed", Fault{Malformed: true},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if err != nil || resp.StatusCode != 200 || json.Valid(body) || !strings.HasSuffix(string(body), ",]") {
					t.Errorf("%v %q", err, body)
				}
			}},
		{"content type", Fault{ContentType: "text/plain"},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if err != nil || resp.Header.Get("Content-Type") != "text/plain" || !json.Valid(body) {
					t.Errorf("%v %q", err, resp.Header.Get("Content-Type"))
				}
			}},
		{"oversize", Fault{OversizeBytes: 5 << 20},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				var list []map[string]any
				if err != nil || len(body) != 5<<20 || json.Unmarshal(body, &list) != nil || len(list) != 2 {
					t.Errorf("%v: %d bytes, %d agents", err, len(body), len(list))
				}
			}},
		{"next link", Fault{NextLink: "http://elsewhere.invalid/x"},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				l := links(t, resp.Header)
				if l["next"] != "http://elsewhere.invalid/x" || l["last"] == "" {
					t.Errorf("Link = %q", resp.Header.Get("Link"))
				}
			}},
		{"link header", Fault{LinkHeader: `<http://x.invalid/?page=2>; rel="next"`},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if resp.Header.Get("Link") != `<http://x.invalid/?page=2>; rel="next"` {
					t.Errorf("Link = %q", resp.Header.Get("Link"))
				}
			}},
		{"link header removed", Fault{LinkHeader: "-"},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if resp.Header.Values("Link") != nil {
					t.Errorf("Link = %q", resp.Header.Get("Link"))
				}
			}},
		{"close connection", Fault{CloseConnection: true},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if err == nil {
					t.Errorf("no error; status %v", resp.Status)
				}
			}},
		{"delay", Fault{Delay: time.Millisecond},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("%v", err)
				}
			}},
		{"no match", Fault{Match: MatchPath("/nowhere"), Status: 500},
			func(t *testing.T, resp *http.Response, body []byte, err error) {
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("%v %v", err, resp.Status)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t)
			putAgents(s.Fake, "acme", 5)
			s.InjectFault(tt.fault)
			resp, body, err := get(s, context.Background(), list)
			tt.check(t, resp, body, err)
		})
	}
}

func TestFaultDelayRespectsContext(t *testing.T) {
	s, _ := newTestServer(t)
	s.AddOrganization("acme")
	ctx, cancel := context.WithCancel(context.Background())
	// Cancel once the request reached the fake (no timing assumptions); the
	// delayed handler must then return, or the cleanup's Close would hang.
	s.InjectFault(Fault{Match: func(*http.Request) bool { cancel(); return false }})
	s.InjectFault(Fault{Delay: time.Hour})
	_, _, err := get(s, ctx, "/organizations/acme/agents")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestServerCloseEndsDelays(t *testing.T) {
	s := NewServer()
	s.AddToken(token)
	arrived := make(chan struct{})
	s.InjectFault(Fault{Match: func(*http.Request) bool { close(arrived); return true }, Delay: time.Hour})
	errc := make(chan error, 1)
	go func() { _, _, err := get(s, context.Background(), "/organizations/acme/agents"); errc <- err }()
	<-arrived
	s.Close() // would block for an hour if the delay ignored Close
	if err := <-errc; err == nil {
		t.Error("request succeeded after Close")
	}
}

func TestFaultTimesMatchersAndRemove(t *testing.T) {
	s, _ := newTestServer(t)
	putAgents(s.Fake, "acme", 5)
	status := func(method, path string) int { return do(t, s, method, path, token, "").status }

	s.InjectFault(Fault{Match: MatchPage(2), Times: 2, Status: 502})
	var got []int
	for range 3 {
		got = append(got, status("GET", "/organizations/acme/agents?per_page=2&page=2"))
	}
	got = append(got, status("GET", "/organizations/acme/agents?per_page=2"))
	if want := []int{502, 502, 200, 200}; !reflect.DeepEqual(got, want) {
		t.Errorf("Times/MatchPage: %v, want %v", got, want)
	}

	remove := s.InjectFault(Fault{Match: MatchPage(1), Status: 500})
	if status("GET", "/organizations/acme/agents") != 500 || status("GET", "/organizations/acme/agents?page=x") != 500 ||
		status("GET", "/organizations/acme/agents/"+agentID(0)) != 200 {
		t.Error("MatchPage(1) should match absent/invalid page and list requests only")
	}
	remove()
	remove()
	if status("GET", "/organizations/acme/agents") != 200 {
		t.Error("fault still active after remove")
	}

	remove = s.InjectFault(Fault{Match: MatchMethod("PUT"), Status: 503})
	if status("PUT", "/organizations/acme/agents/"+agentID(0)+"/stop") != 503 || status("GET", "/organizations/acme/agents") != 200 {
		t.Error("MatchMethod")
	}
	if a, _ := s.Agent("acme", agentID(0)); a.ConnectionState != StateConnected {
		t.Error("a Status fault changed state")
	}
	remove()

	remove = s.InjectFault(Fault{Match: MatchPath("/agents/" + agentID(1)), Status: 404, Body: `{"message":"No agent found"}`})
	do(t, s, "GET", "/organizations/acme/agents/"+agentID(1), token, "").wantMessage(t, 404, MsgNoAgent)
	remove()

	// Truncated 204: nothing to cut, still answers.
	s.InjectFault(Fault{Match: MatchMethod("PUT"), Truncate: true, Times: 1})
	if st := status("PUT", "/organizations/acme/agents/"+agentID(0)+"/pause"); st != 204 {
		t.Errorf("truncated 204: %d", st)
	}
}
