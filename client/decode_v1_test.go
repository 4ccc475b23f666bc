package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// The wire types of the encoding/json decoder, and of the jsontext one
// (decode_text_test.go) that followed it.

// wireAgent is the agent object as Buildkite sends it, limited to the
// fields Agent keeps; encoding/json skips the rest (creator, urls, ...)
// without building them. Strings sent as null stay "".
type wireAgent struct {
	ID                string    `json:"id"`
	Name              string    `json:"name"`
	ConnectionState   internStr `json:"connection_state"`
	Hostname          string    `json:"hostname"`
	IPAddress         string    `json:"ip_address"`
	UserAgent         internStr `json:"user_agent"`
	Version           internStr `json:"version"`
	OSID              internStr `json:"os_id"`
	Arch              internStr `json:"arch"`
	Queue             internStr `json:"queue"`
	MetaData          metaData  `json:"meta_data"`
	Priority          *int      `json:"priority"`
	CreatedAt         wireTime  `json:"created_at"`
	ConnectedAt       wireTime  `json:"connected_at"`
	DisconnectedAt    wireTime  `json:"disconnected_at"`
	LostAt            wireTime  `json:"lost_at"`
	StoppedAt         wireTime  `json:"stopped_at"`
	LastJobFinishedAt wireTime  `json:"last_job_finished_at"`
	Paused            bool      `json:"paused"`
	PausedAt          wireTime  `json:"paused_at"`
	PausedNote        string    `json:"paused_note"`
	Job               *wireJob  `json:"job"`
}

type wireJob struct {
	ID        string    `json:"id"`
	State     internStr `json:"state"`
	StartedAt wireTime  `json:"started_at"`
}

func (w *wireAgent) agent() (Agent, error) {
	if w.ID == "" {
		return Agent{}, errNoID
	}
	a := Agent{
		ID:                w.ID,
		Name:              w.Name,
		ConnectionState:   string(w.ConnectionState),
		Hostname:          w.Hostname,
		IPAddress:         w.IPAddress,
		UserAgent:         string(w.UserAgent),
		Version:           string(w.Version),
		OSID:              string(w.OSID),
		Arch:              string(w.Arch),
		Queue:             string(w.Queue),
		Priority:          w.Priority,
		CreatedAt:         w.CreatedAt.t,
		ConnectedAt:       w.ConnectedAt.t,
		DisconnectedAt:    w.DisconnectedAt.t,
		LostAt:            w.LostAt.t,
		StoppedAt:         w.StoppedAt.t,
		LastJobFinishedAt: w.LastJobFinishedAt.t,
		Paused:            w.Paused,
		PausedAt:          w.PausedAt.t,
		PausedNote:        w.PausedNote,
	}
	if len(w.MetaData) > 0 {
		a.MetaData = w.MetaData
	}
	if w.Job != nil {
		a.Job = &Job{ID: w.Job.ID, State: string(w.Job.State), StartedAt: w.Job.StartedAt.t}
	}
	return a, nil
}

// metaData is the meta_data array of strings, or null. Empty entries (null
// or "") carry nothing and are dropped. It decodes itself to allocate the
// slice once at its final size, where encoding/json would grow it stepwise.
type metaData []string

// UnmarshalJSON is given a complete, syntactically valid JSON value: the
// decoder checks it first, so the scan below only has to find the strings.
func (m *metaData) UnmarshalJSON(b []byte) error {
	*m = nil
	if string(b) == "null" {
		return nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return errBadMetaData
	}
	// Valid JSON: every '"' outside a string starts one, and a string's
	// end is the next '"' not escaped. Pass 1 counts, pass 2 collects.
	var out []string
	last := len(b) - 1 // the closing ']'
	for pass := 0; pass < 2; pass++ {
		n := 0
		for i := 1; i < last; i++ {
			switch b[i] {
			case ' ', '\t', '\n', '\r', ',':
				continue
			case 'n':
				if i+4 > last || string(b[i:i+4]) != "null" {
					return errBadMetaData
				}
				i += 3
				continue
			case '"':
			default: // a number, object, ...
				return errBadMetaData
			}
			start, end, escaped := i, i+1, false
			for ; end < last && b[end] != '"'; end++ {
				if b[end] == '\\' {
					escaped = true
					end++
				}
			}
			if end >= last {
				return errBadMetaData
			}
			i = end
			raw := b[start+1 : end]
			if len(raw) == 0 {
				continue
			}
			n++
			if pass == 0 {
				continue
			}
			if !escaped && utf8.Valid(raw) {
				out = append(out, string(raw))
				continue
			}
			var v string // escapes or invalid UTF-8: let encoding/json handle them
			if err := json.Unmarshal(b[start:end+1], &v); err != nil {
				return errBadMetaData
			}
			out = append(out, v)
		}
		if n == 0 {
			return nil
		}
		if pass == 0 {
			out = make([]string, 0, n)
		}
	}
	*m = out
	return nil
}

// wireTime is an RFC 3339 timestamp, with or without fractional seconds;
// null and "" are the zero time. Times are kept in UTC.
type wireTime struct{ t time.Time }

func (w *wireTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		w.t = time.Time{}
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return errBadTime
	}
	raw := b[1 : len(b)-1]
	if bytes.IndexByte(raw, '\\') >= 0 { // escapes are legal JSON, if unlikely
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errBadTime
		}
		raw = []byte(s)
	}
	if len(raw) == 0 {
		w.t = time.Time{}
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(raw))
	if err != nil {
		return errBadTime
	}
	w.t = t.UTC()
	return nil
}

// internStr is a string of which a fleet has few distinct values
// (connection states, job states, platforms). Well-known values map to one
// shared string instead of a new allocation per agent.
type internStr string

// UnmarshalJSON is given a complete, syntactically valid JSON value: the
// decoder checks it first.
func (s *internStr) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = ""
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
		raw := b[1 : len(b)-1]
		if v, ok := commonStrings[string(raw)]; ok { // the lookup does not allocate
			*s = internStr(v)
		} else {
			*s = internStr(raw)
		}
		return nil
	}
	var v string // escapes or invalid UTF-8: let encoding/json handle them
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = internStr(v)
	return nil
}

// decodeAgentsV1 is DecodeAgents as it was with encoding/json (commit
// before the jsontext decoder): the baseline of the benchmarks below and
// the reference of FuzzDecodeAgentsParity.
func decodeAgentsV1(r io.Reader, fn func(Agent) error) error {
	dec := json.NewDecoder(r)
	tok, err := dec.Token()
	if err != nil {
		return malformedV1(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return fmt.Errorf("%w: expected a JSON array of agents, got %v", ErrMalformed, tok)
	}
	var w wireAgent
	for i := 0; dec.More(); i++ {
		w = wireAgent{}
		if err := dec.Decode(&w); err != nil {
			return fmt.Errorf("%w: agent %d: %w", ErrMalformed, i, err)
		}
		a, err := w.agent()
		if err != nil {
			return fmt.Errorf("%w: agent %d: %w", ErrMalformed, i, err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return malformedV1(err)
	}
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return fmt.Errorf("%w: trailing data after the JSON value", ErrMalformed)
	default:
		return malformedV1(err)
	}
}

func malformedV1(err error) error { return fmt.Errorf("%w: %w", ErrMalformed, err) }

// decodeAgentsV1ReadAll reads the whole page, then json.Unmarshal into a
// slice: one validating scan of the page plus reflection.
func decodeAgentsV1ReadAll(r io.Reader, fn func(Agent) error) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return malformedV1(err)
	}
	var ws []wireAgent
	if err := json.Unmarshal(b, &ws); err != nil {
		return malformedV1(err)
	}
	for i := range ws {
		a, err := ws[i].agent()
		if err != nil {
			return malformedV1(err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

// skipV1 swallows a value without building it.
type skipV1 struct{}

func (skipV1) UnmarshalJSON([]byte) error { return nil }

// decodeAgentsV1Tokens walks each agent's members with dec.Token() and
// decodes only the kept ones, skipping the rest as skipV1.
func decodeAgentsV1Tokens(r io.Reader, fn func(Agent) error) error {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return malformedV1(err)
	}
	var skip skipV1
	for dec.More() {
		var w wireAgent
		if _, err := dec.Token(); err != nil { // {
			return malformedV1(err)
		}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return malformedV1(err)
			}
			var dst any
			switch tok.(string) {
			case "id":
				dst = &w.ID
			case "name":
				dst = &w.Name
			case "connection_state":
				dst = &w.ConnectionState
			case "hostname":
				dst = &w.Hostname
			case "ip_address":
				dst = &w.IPAddress
			case "user_agent":
				dst = &w.UserAgent
			case "version":
				dst = &w.Version
			case "os_id":
				dst = &w.OSID
			case "arch":
				dst = &w.Arch
			case "queue":
				dst = &w.Queue
			case "meta_data":
				dst = &w.MetaData
			case "priority":
				dst = &w.Priority
			case "created_at":
				dst = &w.CreatedAt
			case "connected_at":
				dst = &w.ConnectedAt
			case "disconnected_at":
				dst = &w.DisconnectedAt
			case "lost_at":
				dst = &w.LostAt
			case "stopped_at":
				dst = &w.StoppedAt
			case "last_job_finished_at":
				dst = &w.LastJobFinishedAt
			case "paused":
				dst = &w.Paused
			case "paused_at":
				dst = &w.PausedAt
			case "paused_note":
				dst = &w.PausedNote
			case "job":
				dst = &w.Job
			default:
				dst = &skip
			}
			if err := dec.Decode(dst); err != nil {
				return malformedV1(err)
			}
		}
		if _, err := dec.Token(); err != nil { // }
			return malformedV1(err)
		}
		a, err := w.agent()
		if err != nil {
			return malformedV1(err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	_, err := dec.Token()
	return err
}

// decodeAgentsV2Unmarshal decodes each element with the v2 prototype's
// reflection (json.UnmarshalDecode into wireAgent; the UnmarshalJSON
// methods are called with raw values) over a jsontext.Decoder.
func decodeAgentsV2Unmarshal(r io.Reader, fn func(Agent) error) error {
	dec := jsontext.NewDecoder(r, textOptions...)
	if _, err := dec.ReadToken(); err != nil {
		return malformedV1(err)
	}
	opts := jsonv2.JoinOptions(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true), jsonv2.MatchCaseInsensitiveNames(true))
	var w wireAgent
	for dec.PeekKind() != ']' {
		w = wireAgent{}
		if err := jsonv2.UnmarshalDecode(dec, &w, opts); err != nil {
			return malformedV1(err)
		}
		a, err := w.agent()
		if err != nil {
			return malformedV1(err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// BenchmarkDecodeAgentsPageAlt compares the decoders on the realistic
// page, side by side in one run: v1 is the encoding/json decoder, replaced
// by jsontext (decodeAgentsText), replaced by the scanner (DecodeAgents).
func BenchmarkDecodeAgentsPageAlt(b *testing.B) {
	page := realisticPage(100)
	for _, bc := range []struct {
		name   string
		decode func(io.Reader, func(Agent) error) error
	}{
		{"v1", decodeAgentsV1},
		{"v1-readall", decodeAgentsV1ReadAll},
		{"v1-tokens", decodeAgentsV1Tokens},
		{"v2-unmarshal", decodeAgentsV2Unmarshal},
		{"jsontext", decodeAgentsText},
		{"scan", DecodeAgents},
	} {
		b.Run(bc.name, func(b *testing.B) {
			agents := make([]Agent, 0, 100)
			b.ReportAllocs()
			b.SetBytes(int64(len(page)))
			for b.Loop() {
				agents = agents[:0]
				err := bc.decode(bytes.NewReader(page), func(a Agent) error {
					agents = append(agents, a)
					return nil
				})
				if err != nil || len(agents) != 100 {
					b.Fatal(err, len(agents))
				}
			}
		})
	}
}

// TestDecodeAlternativesAgree checks that the benchmarked alternatives
// decode the realistic page to the same agents as DecodeAgents.
func TestDecodeAlternativesAgree(t *testing.T) {
	page := realisticPage(30)
	var want []Agent
	if err := DecodeAgents(bytes.NewReader(page), func(a Agent) error { want = append(want, a); return nil }); err != nil {
		t.Fatal(err)
	}
	for name, decode := range map[string]func(io.Reader, func(Agent) error) error{
		"v1": decodeAgentsV1, "v1-readall": decodeAgentsV1ReadAll, "v1-tokens": decodeAgentsV1Tokens, "v2-unmarshal": decodeAgentsV2Unmarshal,
		"jsontext": decodeAgentsText,
	} {
		var got []Agent
		if err := decode(bytes.NewReader(page), func(a Agent) error { got = append(got, a); return nil }); err != nil {
			t.Fatal(name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: agents differ", name)
		}
	}
}

// FuzzDecodeAgentsParity checks DecodeAgents against the encoding/json
// decoder (see checkParity).
func FuzzDecodeAgentsParity(f *testing.F) {
	for _, s := range []string{
		`[]`, `null`, ``, `{}`, `[{}]`, `[null]`, `[{"id":"a"}]`, `[1]`, `[{"id":"a"}`, `[{"id":"a"},]`,
		`[{"id":"a","priority":null,"meta_data":null,"job":null}]`,
		`[{"id":"a","priority":3,"meta_data":["a=b","",null],"job":{"id":"j","state":"running","started_at":"2015-07-30T12:58:34.000Z"}}]`,
		`[{"id":"a","created_at":"2015-05-09T21:05:59Z","connected_at":"2015-05-09T21:05:59.874+02:00","lost_at":""}]`,
		`[{"id":"a","created_at":"garbage"}]`, `[{"id":"a","priority":1.5}]`, `[{"id":"a","priority":-0}]`,
		`[{"id":"a","connection_state":"conn\u0065cted","name":"\ud800"}]`,
		`[{"ID":"a","Name":"n","\u006eame":"m","NAME":null,"paused":true,"paused":null}]`,
		`[{"id":"a","job":{"id":"j"},"job":{"state":"running"}}]`, `[{"id":"a","job":{"id":"j"},"job":null}]`,
		"[{\"id\":\"a\xff\",\"hostname\":\"h\xc3\"}]", `[{"id":"a","ſtate":"x","Kelvin\u212a":1}]`,
		`[{"id":"a"}] x`, `[] []`, string(realisticPage(2)),
	} {
		f.Add([]byte(s))
	}
	for _, s := range decodeEdgeCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkParity(t, data) })
}
