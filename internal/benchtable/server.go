package benchtable

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
)

// Token and Org are what the fake of a Server accepts and serves.
const (
	Token = "bkua_bench_token_0123456789"
	Org   = "bench"
)

// Server is the fake API with a Fleet, behind a Replay.
type Server struct {
	Fake   *buildkitetest.Fake
	Replay *Replay
	URL    string // the REST API base, ".../v2"
	http   *httptest.Server
}

// NewServer starts a fake serving Fleet(agents) for Org. With replay false
// every request reaches the fake itself (latency still comes from the
// Replay in front).
func NewServer(agents int, replay bool) *Server {
	fake, rp := newFake(agents, replay)
	hs := httptest.NewServer(rp)
	return &Server{Fake: fake, Replay: rp, URL: hs.URL + "/v2", http: hs}
}

func newFake(agents int, replay bool) (*buildkitetest.Fake, *Replay) {
	fake := buildkitetest.NewFake()
	fake.AddToken(Token, "read_agents", "read_clusters") // the binary reads clusters (none here): one request per --collector.clusters-interval
	fake.AddOrganization(Org)
	for _, a := range Fleet(agents) {
		fake.PutAgent(Org, a)
	}
	rp := NewReplay(fake.Handler())
	if !replay {
		rp.cache = nil
	}
	return fake, rp
}

// Close stops the server.
func (s *Server) Close() { s.http.Close() }

// ControlHandler serves the fake (behind a Replay) plus the endpoints a
// measuring process uses from outside: GET /__bench/latency?d=50ms sets
// the latency, /__bench/requests returns the API requests received so far,
// /__bench/cpu the fake process's CPU time in nanoseconds.
func ControlHandler(agents int) http.Handler {
	_, rp := newFake(agents, true)
	mux := http.NewServeMux()
	mux.HandleFunc("/__bench/latency", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rp.SetLatency(d)
	})
	mux.HandleFunc("/__bench/requests", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, rp.Requests())
	})
	mux.HandleFunc("/__bench/cpu", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strconv.FormatInt(int64(CPUTime()), 10))
	})
	mux.Handle("/", rp)
	return mux
}
