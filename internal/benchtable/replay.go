package benchtable

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Replay fronts the fake API for measurements of the exporter alone. The
// fake builds every list page from scratch (it sorts the whole fleet and
// renders each agent per request, about 8 ms of CPU per page at 50,000
// agents), which on a two-core machine would be charged to the exporter.
// Replay answers each distinct successful GET with the bytes and headers
// the fake sent the first time, so the exporter reads exactly what the
// fake serves. Latency is added to every request, as the fake's Delay
// fault does. Requests counts every API request that reached it.
type Replay struct {
	next     http.Handler
	latency  atomic.Int64
	requests atomic.Int64

	mu    sync.Mutex
	cache map[string]*recorded
}

type recorded struct {
	status int
	header http.Header
	body   []byte
}

// NewReplay returns a Replay in front of next.
func NewReplay(next http.Handler) *Replay {
	return &Replay{next: next, cache: map[string]*recorded{}}
}

// SetLatency sets the delay added before every answer.
func (p *Replay) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Requests returns how many API requests were received so far.
func (p *Replay) Requests() int64 { return p.requests.Load() }

func (p *Replay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v2/") {
		p.requests.Add(1)
	}
	if d := time.Duration(p.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-r.Context().Done():
			t.Stop()
			panic(http.ErrAbortHandler)
		case <-t.C:
		}
	}
	key := r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("Authorization")
	var rec *recorded
	p.mu.Lock()
	if p.cache != nil {
		rec = p.cache[key]
	}
	p.mu.Unlock()
	if rec == nil {
		rw := &recorder{header: http.Header{}, status: http.StatusOK}
		p.next.ServeHTTP(rw, r)
		rec = &recorded{status: rw.status, header: rw.header, body: rw.body.Bytes()}
		p.mu.Lock()
		if p.cache != nil && r.Method == http.MethodGet && rec.status == http.StatusOK {
			p.cache[key] = rec
		}
		p.mu.Unlock()
	}
	h := w.Header()
	for k, v := range rec.header {
		h[k] = v
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body)
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
