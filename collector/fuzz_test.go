package collector_test

// Fuzz targets from the API's bytes to the exposition: whatever a page
// holds, or whatever strings an agent carries, collecting must not panic,
// the text /metrics writes must parse, every label value must be valid
// UTF-8, and the result must lint clean.
//
//	go test -run '^$' -fuzz '^FuzzAgentPage$' -fuzztime 30s ./collector/
//	go test -run '^$' -fuzz '^FuzzAgentStrings$' -fuzztime 30s ./collector/

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/buildkite-exporter/buildkite_exporter/client"
	"github.com/buildkite-exporter/buildkite_exporter/client/buildkitetest"
	"github.com/buildkite-exporter/buildkite_exporter/collector"
)

// checkExposition scrapes e once as /metrics does: the text must parse,
// pass a registry's checks (UTF-8 label values, no duplicate series), have
// one buildkite_up and lint clean.
func checkExposition(t *testing.T, e *collector.Exporter) {
	t.Helper()
	mfs, err := served{context.Background(), e}.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	up := 0
	for _, mf := range mfs {
		if mf.GetName() == "buildkite_up" {
			up = len(mf.GetMetric())
		}
	}
	if up != 1 {
		t.Fatalf("%d buildkite_up series", up)
	}
	problems, err := testutil.GatherAndLint(fixedFamilies(mfs))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Fatalf("lint: %s: %s", p.Metric, p.Text)
	}
}

var fuzzPageSeeds = []string{
	`[]`,
	`null`,
	`{}`,
	``,
	`[{"id":"a"}]`,
	`[{"id":"a","name":"n","connection_state":"connected","hostname":"h","ip_address":"1.2.3.4","user_agent":"buildkite-agent/3.80.0 (linux; amd64)",` +
		`"version":"3.80.0","os_id":"linux","arch":"amd64","queue":"build","meta_data":["queue=build","size=large","docker"],"priority":5,` +
		`"created_at":"2026-11-01T11:00:00.000Z","connected_at":"2026-11-01T11:00:01.000Z","last_job_finished_at":"2026-11-01T11:30:00.123Z",` +
		`"paused":true,"paused_at":null,"job":{"id":"j","state":"running","started_at":"2026-11-01T11:59:00Z"}}]`,
	`[{"id":"a","meta_data":["queue=","queue=b","queue=b","=","k=v=w","size=\u0000","\ud800","t\u202eeam=x"]},{"id":"b","queue":"","meta_data":null}]`,
	`[{"id":"a","name":null,"connection_state":null,"hostname":null,"ip_address":null,"user_agent":null,"version":null,"os_id":null,"arch":null,` +
		`"queue":null,"meta_data":null,"priority":null,"created_at":null,"connected_at":null,"last_job_finished_at":null,"paused":null,"job":null}]`,
	`[{"id":"a","connection_state":"hibernating","job":{"state":"teleporting"},"future":{"x":[1,2,{"y":null}]}}]`,
	`[{"id":"a"},{"id":"a","name":"dup"}]`,
	"[{\"id\":\"a\xff\",\"name\":\"\xfe\",\"meta_data\":[\"k\xff=v\xfe\",\"queue=\xc0\xaf\"]},{\"id\":\"a\xfe\"}]",
	`[{"id":"a","priority":"high"}]`,
	`[{"id":"a","created_at":"yesterday"}]`,
	`[{"id":"a","meta_data":[1,2]}]`,
	`[{"id":"a","user_agent":"buildkite-agent/3 (;)","os_id":"","arch":""},{"id":"b","user_agent":"(((;;;)))"}]`,
	`[{"id":"a","priority":-9007199254740993,"created_at":"0001-01-01T00:00:00Z","last_job_finished_at":"9999-12-31T23:59:59.999999999Z"}]`,
	`[{"id":"a"}] trailing`,
	`[{"id":"a"},]`,
}

// FuzzAgentPage serves the fuzzed bytes as the agents page (one page, no
// Link) through the real client.
func FuzzAgentPage(f *testing.F) {
	for _, s := range fuzzPageSeeds {
		f.Add([]byte(s))
	}
	var (
		mu   sync.Mutex
		body []byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		b := body
		mu.Unlock()
		if strings.Count(r.URL.Path, "/") > 4 { // GET agent: the departure lookup
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"id":"x","connection_state":"lost"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write(b)
	}))
	f.Cleanup(srv.Close)
	api, err := client.New(client.Config{BaseURL: srv.URL + "/v2", Token: client.StaticToken(testToken), MaxRetries: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, page []byte) {
		mu.Lock()
		body = page
		mu.Unlock()
		clock := buildkitetest.NewClock(epoch)
		e, err := collector.New(api, collector.Config{
			Organizations: []string{"acme"}, AgentDetails: true, DepartureLookups: 2, Tags: []string{"size", "queue", "k"},
			QueueRetention: time.Hour, AgentRetention: time.Hour, Timeout: 5 * time.Second, Now: clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		checkExposition(t, e)
		// The agents leave: their departed series must be as clean.
		mu.Lock()
		body = []byte(`[]`)
		mu.Unlock()
		clock.Advance(time.Minute)
		checkExposition(t, e)
	})
}

// stringsAPI lists the agents it is given.
type stringsAPI struct{ agents []client.Agent }

func (s *stringsAPI) ListAgents(context.Context, string, client.ListOptions) (*client.AgentList, error) {
	return &client.AgentList{Agents: s.agents, Pages: 1}, nil
}

func (s *stringsAPI) GetAgent(_ context.Context, _, id string) (*client.Agent, int, error) {
	return &client.Agent{ID: id, ConnectionState: "lost\xff"}, 1, nil
}

func (s *stringsAPI) RateLimit(string) (client.RateLimit, bool) { return client.RateLimit{}, false }

// FuzzAgentStrings builds agents from fuzzed strings directly, as another
// AgentAPI could hand them over: no UTF-8 repair by a JSON decoder first.
// meta_data is the fuzzed text split at newlines.
func FuzzAgentStrings(f *testing.F) {
	f.Add("a", "b", "name", "connected", "host", "3.80.0", "build", "buildkite-agent/3 (linux; amd64)", "queue=build\nsize=large\ndocker")
	f.Add("a\xff", "a\xfe", "n\xff", "conn\xffected", "h\xfe", "3.\xff", "q\xff", "x (\xff; \xfe)", "queue=\xff\nsize=\xfe\n\xff=\xff\nk")
	f.Add("x", "x", "", "", "", "", "", "", "")
	f.Add("a\xff", "a\xfe", "n", "connected", "h", "3", "", "", "queue=q") // two IDs, one after UTF-8 repair
	f.Add("a", "b", "n", "stopping", "", "", "", "", "queue=\nqueue=a\nqueue=a\n=\nsize=\nsize")
	f.Add("a", "b", "n", "connected", "", "", "a,b", "", "queue=a,b\nqueue=c")
	f.Add("a\"", "b\\", "n\"q\\", "connected", "h\nx\\", "3\\\"", "q\"", "x (l\"; a\\)", "k=v\"\\w\nk\\=\"")
	f.Fuzz(func(t *testing.T, id1, id2, name, state, hostname, version, queue, userAgent, metaData string) {
		if id1 == "" || id2 == "" {
			return // the client never returns an agent without id
		}
		var md []string
		for _, m := range strings.Split(metaData, "\n") {
			if m != "" {
				md = append(md, m)
			}
		}
		one := client.Agent{ID: id1, Name: name, ConnectionState: state, Hostname: hostname, Version: version, Queue: queue,
			UserAgent: userAgent, IPAddress: hostname, MetaData: md, Paused: len(name)%2 == 0}
		two := one
		two.ID, two.Queue, two.Job = id2, "", &client.Job{ID: "j", State: state}
		var agents []client.Agent
		if id1 == id2 {
			agents = []client.Agent{one} // the client deduplicates by ID
		} else {
			agents = []client.Agent{one, two}
		}
		api := &stringsAPI{agents: agents}
		clock := buildkitetest.NewClock(epoch)
		e, err := collector.New(api, collector.Config{
			Organizations: []string{"acme"}, AgentDetails: true, DepartureLookups: 1, Tags: []string{"size", "queue"},
			QueueRetention: time.Hour, AgentRetention: time.Hour, Timeout: 5 * time.Second, Now: clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		checkExposition(t, e)
		api.agents = nil
		clock.Advance(time.Minute)
		checkExposition(t, e)
	})
}
