package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// realisticPage is an agents page shaped like Buildkite's: every documented
// field, a creator, a busy agent's full job object, and tags.
func realisticPage(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		id := fmt.Sprintf("0b461f65-e7be-4c80-888a-%012d", i)
		job := "null"
		if i%3 != 0 {
			jid := fmt.Sprintf("cd164055-9649-452b-8d8e-%012d", i)
			job = `{"id":"` + jid + `","graphql_id":"Sm9iLS0tMTQ4YWQ0MzgtM2E2My00YWIxLWIzMjItNzIxM2Y3YzJhMWFi","type":"script",
"name":"rspec","agent_query_rules":["queue=default"],"state":"running",
"build_url":"https://api.buildkite.com/v2/organizations/my-great-org/pipelines/sleeper/builds/50",
"web_url":"https://buildkite.com/my-great-org/sleeper/builds/50#` + jid + `",
"log_url":"https://api.buildkite.com/v2/organizations/my-great-org/pipelines/sleeper/builds/50/jobs/` + jid + `/log",
"raw_log_url":"https://api.buildkite.com/v2/organizations/my-great-org/pipelines/sleeper/builds/50/jobs/` + jid + `/log.txt",
"artifacts_url":"https://api.buildkite.com/v2/organizations/my-great-org/pipelines/sleeper/builds/50/jobs/` + jid + `/artifacts",
"script_path":"sleep 1","command":"sleep 1","soft_failed":false,"exit_status":null,"artifact_paths":"*","agent":null,
"created_at":"2015-07-30T12:58:22.942Z","scheduled_at":"2015-07-30T12:58:22.935Z","started_at":"2015-07-30T12:58:34.000Z","finished_at":null}`
		}
		fmt.Fprintf(&b, `{"id":%q,"graphql_id":"QWdlbnQtLS1mOTBhNzliNC01YjJlLTQzNzEtYjYxZS03OTA4ZDAyNmUyN2E=",
"url":"https://api.buildkite.com/v2/organizations/my-great-org/agents/%[1]s",
"web_url":"https://buildkite.com/organizations/my-great-org/clusters/78088c9a-6e72-4896-848d-e6f479f50c24/queues/c109939f-3b71-4cd3-b175-8eb79d2eb38e/agents/%[1]s",
"name":"ci-agent-%[2]d","connection_state":"connected","hostname":"ip-10-0-%[2]d.ec2.internal","ip_address":"10.0.0.%[2]d",
"user_agent":"buildkite-agent/3.87.1.10524 (linux; amd64)","version":"3.87.1","os_id":"linux","arch":"amd64","queue":"default",
"creator":{"id":"2eba97bc-7cc7-427f-8feb-1008c72aa1d8","graphql_id":"VXNlci0tLThmNzFlOWI1LTczMDEtNDI4ZS1hMjQ1LWUwOWI0YzI0OWRiZg==","name":"Keith Pitt","email":"me@keithpitt.com","avatar_url":"https://www.gravatar.com/avatar/e14f55d3f939977cecbf51b64ff6f861","created_at":"2015-05-09T21:05:59.874Z"},
"created_at":"2024-02-24T22:33:45.263Z","connected_at":"2024-02-24T22:33:46.001Z","disconnected_at":null,"lost_at":null,"stopped_at":null,
"job":%s,"last_job_finished_at":"2024-02-25T01:02:03.456Z","priority":%d,
"meta_data":["queue=default","docker=true","aws:instance-type=c5.2xlarge","stack=ci-%[2]d"],
"paused":false,"paused_at":null,"paused_by":null,"paused_note":null,"paused_timeout_in_minutes":null}`, id, i, job, i%5)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func FuzzParseLinkHeader(f *testing.F) {
	for _, s := range []string{
		``,
		`<https://api.buildkite.com/v2/organizations/o/agents?page=2&per_page=100>; rel="next", <https://api.buildkite.com/v2/organizations/o/agents?page=26&per_page=100>; rel="last"`,
		`<u1>;rel=next,<u2>;rel=last`,
		` < u1 > ;  REL = "Next" ; title="a;b,c" , `,
		`<u1>; rel="next last"`,
		`<u1>; rel="ne\"xt"`,
		`<u1>;; rel=next`,
		`<u1; rel=next`,
		`<u1>; rel="next`,
		`<a,b;c>; rel="next", , <x>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		links, err := ParseLinkHeader(h)
		if err != nil {
			if links != nil {
				t.Fatal("links with an error")
			}
			return
		}
		// Invariants: relations are non-empty, lower case and free of white
		// space; URLs are non-empty, trimmed and contain no '>'. Writing
		// the map back out and parsing it again gives the same map.
		var out []string
		for rel, u := range links {
			if rel == "" || rel != strings.ToLower(rel) || strings.ContainsAny(rel, " \t") {
				t.Fatalf("bad rel %q", rel)
			}
			if u == "" || strings.Contains(u, ">") || u != strings.TrimSpace(u) {
				t.Fatalf("bad URL %q", u)
			}
			q := strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(rel)
			out = append(out, "<"+u+`>; rel="`+q+`"`)
		}
		again, err := ParseLinkHeader(strings.Join(out, ", "))
		if err != nil {
			t.Fatalf("round trip of %q: %v", out, err)
		}
		if fmt.Sprint(again) != fmt.Sprint(links) {
			t.Fatalf("round trip: %v != %v", again, links)
		}
	})
}

// FuzzDecodeAgents: whatever the page, the decoder returns an error
// wrapping ErrMalformed, or agents that keep its promises (an ID, valid
// UTF-8, UTC times, no empty meta_data entry, cluster and queue together)
// from a body that is valid JSON.
func FuzzDecodeAgents(f *testing.F) {
	for _, s := range []string{
		`[]`, `null`, ``, `{}`, `[{}]`, `[null]`, `[{"id":"a","connection_state":"c"}]`,
		`[{"id":"a","connection_state":"c","priority":null,"meta_data":null,"job":null}]`,
		`[{"id":"a","connection_state":"c","priority":3,"meta_data":["a=b","",null],"job":{"id":"j","state":"running","started_at":"2015-07-30T12:58:34.000Z"}}]`,
		`[{"id":"a","connection_state":"c","created_at":"2015-05-09T21:05:59Z","connected_at":"2015-05-09T21:05:59.874+02:00","lost_at":""}]`,
		`[{"id":"a","connection_state":"c","created_at":"2026-01-02 03:04:05 UTC","priority":{"number":1},"job":[1],"meta_data":"x"}]`,
		`[{"id":"a","connection_state":"c","web_url":"https://buildkite.com/organizations/o/clusters/c/queues/q/agents/a"}]`,
		`[{"id":"a","connection_state":"conn\u0065cted","name":"\ud800"}]`,
		`[{"id":"a"},]`, `[{"id":"a"}] x`, `[{"id":5,"connection_state":"c"}]`,
		string(realisticPage(2)),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		agents, fieldErrors, err := DecodeAgents(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !validPage(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		for name, n := range fieldErrors {
			if name == "id" || name == "connection_state" || n <= 0 {
				t.Fatalf("field errors %v", fieldErrors)
			}
		}
		for _, a := range agents {
			checkAgent(t, a)
		}
	})
}

func checkAgent(t *testing.T, a Agent) {
	t.Helper()
	if a.ID == "" {
		t.Fatal("agent without ID")
	}
	for _, s := range []string{a.ID, a.Name, a.ConnectionState, a.Hostname, a.IPAddress, a.UserAgent,
		a.Version, a.OSID, a.Arch, a.Queue, a.PausedNote, a.ClusterID, a.QueueID} {
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 %q", s)
		}
	}
	if (a.ClusterID == "") != (a.QueueID == "") {
		t.Fatalf("cluster %q without queue %q", a.ClusterID, a.QueueID)
	}
	for _, m := range a.MetaData {
		if m == "" || !utf8.ValidString(m) {
			t.Fatalf("bad meta_data entry %q", m)
		}
	}
	if a.MetaData != nil && len(a.MetaData) == 0 {
		t.Fatal("empty non-nil MetaData")
	}
	times := []time.Time{a.CreatedAt, a.ConnectedAt, a.DisconnectedAt, a.LostAt, a.StoppedAt, a.LastJobFinishedAt, a.PausedAt}
	if a.Job != nil {
		times = append(times, a.Job.StartedAt)
	}
	for _, ts := range times {
		if !ts.IsZero() && ts.Location() != time.UTC {
			t.Fatalf("time not in UTC: %v", ts)
		}
	}
}

// validPage reports whether data is valid JSON as json.Decoder reads a
// page, element by element: json.Valid also counts the array in its
// nesting limit, so it rejects an agent nested exactly 10000 deep.
func validPage(data []byte) bool {
	if json.Valid(data) {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return false
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return false
		}
	}
	if _, err := dec.Token(); err != nil {
		return false
	}
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

// BenchmarkDecodeAgentsPage decodes a realistic page of 100 agents.
func BenchmarkDecodeAgentsPage(b *testing.B) {
	page := realisticPage(100)
	b.ReportAllocs()
	b.SetBytes(int64(len(page)))
	for b.Loop() {
		agents, _, err := DecodeAgents(page)
		if err != nil || len(agents) != 100 {
			b.Fatal(err, len(agents))
		}
	}
}
