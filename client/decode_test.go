package client

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDecodeAgents(t *testing.T) {
	full := `[{"id":"a1","graphql_id":"x","name":"n","connection_state":"connected","hostname":"h","ip_address":"1.2.3.4",
		"user_agent":"buildkite-agent/3.1 (linux; amd64)","version":"3.1","creator":{"id":"c","x":[1,{}]},
		"created_at":"2015-05-09T21:05:59.874Z","connected_at":"2015-05-09T21:06:00Z","disconnected_at":null,
		"lost_at":"","stopped_at":"2015-05-09T23:06:00+02:00","last_job_finished_at":null,
		"priority":5,"meta_data":["queue=default","",null,"bare"],"os_id":"linux","arch":"arm64","queue":"q",
		"paused":true,"paused_at":"2015-05-09T21:07:00.1Z","paused_by":{"id":"u"},"paused_note":"why",
		"web_url":"https://buildkite.com/organizations/o/clusters/c-1/queues/q-1/agents/a1",
		"job":{"id":"j","state":"running","started_at":"2015-07-30T12:58:34.000Z","agent":null,"exit_status":0},
		"future_field":{"deep":[null,true]}},
		{"id":"a2","priority":null,"meta_data":null,"job":null,"connection_state":"wobbly","paused":null,"name":null,
		"web_url":"https://buildkite.com/organizations/o/agents/a2"}]`
	agents, fe, err := DecodeAgents([]byte(full))
	if err != nil || fe != nil || len(agents) != 2 {
		t.Fatal(agents, fe, err)
	}
	ts := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v.UTC() }
	a := agents[0]
	if a.ID != "a1" || a.Name != "n" || a.ConnectionState != "connected" || a.IPAddress != "1.2.3.4" || a.Version != "3.1" ||
		*a.Priority != 5 || strings.Join(a.MetaData, "|") != "queue=default|bare" || a.OSID != "linux" || a.Arch != "arm64" ||
		a.Queue != "q" || !a.Paused || a.PausedNote != "why" || a.ClusterID != "c-1" || a.QueueID != "q-1" ||
		!a.CreatedAt.Equal(ts("2015-05-09T21:05:59.874Z")) || !a.ConnectedAt.Equal(ts("2015-05-09T21:06:00Z")) ||
		!a.DisconnectedAt.IsZero() || !a.LostAt.IsZero() || !a.StoppedAt.Equal(ts("2015-05-09T21:06:00Z")) ||
		a.StoppedAt.Location() != time.UTC || !a.PausedAt.Equal(ts("2015-05-09T21:07:00.1Z")) ||
		a.Job == nil || a.Job.ID != "j" || a.Job.State != "running" || !a.Job.StartedAt.Equal(ts("2015-07-30T12:58:34Z")) {
		t.Fatalf("agent = %+v", a)
	}
	b := agents[1]
	if b.Priority != nil || b.MetaData != nil || b.Job != nil || b.ConnectionState != "wobbly" || b.Paused || b.Name != "" || b.ClusterID != "" {
		t.Fatalf("agent = %+v", b)
	}
}

// TestDecodeTolerated: a member of an unexpected type or format is absent
// for its agent and counted by name; the page still decodes.
func TestDecodeTolerated(t *testing.T) {
	tooMany := `[` + strings.Repeat(`"k=v",`, maxMetaData) + `"last"]`
	for _, tc := range []struct{ member, field string }{
		{`"priority":1.5`, "priority"},
		{`"priority":{"number":1}`, "priority"},
		{`"priority":"high"`, "priority"},
		{`"priority":99999999999999999999`, "priority"},
		{`"created_at":"2026-01-02 03:04:05 UTC"`, "created_at"},
		{`"created_at":"2015-13-01T00:00:00Z"`, "created_at"},
		{`"created_at":12`, "created_at"},
		{`"meta_data":"x"`, "meta_data"},
		{`"meta_data":[1]`, "meta_data"},
		{`"meta_data":` + tooMany, "meta_data"},
		{`"job":"x"`, "job"},
		{`"job":[]`, "job"},
		{`"job":{"started_at":"now"}`, "job.started_at"},
		{`"job":{"id":7}`, "job.id"},
		{`"paused":"yes"`, "paused"},
		{`"name":{"first":"x"}`, "name"},
		{`"queue":["q"]`, "queue"},
		{`"web_url":"https://buildkite.com/organizations/o/clusters/c/agents/a"`, "web_url"},
		{`"web_url":"not a url"`, "web_url"},
		{`"web_url":"https://buildkite.com/organizations/o/clusters//queues/q/agents/a"`, "web_url"},
	} {
		page := fmt.Sprintf(`[{"id":"a","connection_state":"connected",%s},{"id":"b","connection_state":"connected"}]`, tc.member)
		agents, fe, err := DecodeAgents([]byte(page))
		if err != nil || len(agents) != 2 || len(fe) != 1 || fe[tc.field] != 1 {
			t.Errorf("%s: %d agents, field errors %v, err %v", tc.member, len(agents), fe, err)
		}
	}
	if agents, _, _ := DecodeAgents([]byte(`[{"id":"a","connection_state":"c","meta_data":` + tooMany[:len(tooMany)-8] + `]}]`)); len(agents[0].MetaData) != maxMetaData {
		t.Errorf("meta_data at the bound: %d entries", len(agents[0].MetaData))
	}
}

// TestDecodeRefused: what fails the page.
func TestDecodeRefused(t *testing.T) {
	for _, bad := range []string{
		``, `null`, `{}`, `"x"`, `[1]`, `[null]`, `[{}]`, `[{"id":"a"`, `[{"id":"a","connection_state":"c"},]`, `[]]`, `[] x`,
		`[{"connection_state":"c"}]`, `[{"id":null,"connection_state":"c"}]`, `[{"id":5,"connection_state":"c"}]`, `[{"id":"","connection_state":"c"}]`,
		`[{"id":"a"}]`, `[{"id":"a","connection_state":null}]`, `[{"id":"a","connection_state":1}]`, `[{"id":"a","connection_state":["c"]}]`,
	} {
		if _, _, err := DecodeAgents([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
	if agents, _, err := DecodeAgents([]byte(" [ ] \n")); err != nil || len(agents) != 0 {
		t.Fatal(agents, err)
	}
	// Escapes and invalid UTF-8, as encoding/json reads them.
	agents, _, err := DecodeAgents([]byte("[{\"id\":\"a\xff\"," + `"connection_state":"conn\u0065cted","created_at":"2015-05-09T21:05:59\u002e5Z"}]`))
	if err != nil || agents[0].ID != "a\uFFFD" || agents[0].ConnectionState != "connected" || agents[0].CreatedAt.Nanosecond() != 5e8 {
		t.Fatal(agents, err)
	}
}
