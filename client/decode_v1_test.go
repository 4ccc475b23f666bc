package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

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
// page, side by side in one run: v1 is the encoding/json decoder replaced
// by jsontext (DecodeAgents).
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
		{"jsontext", DecodeAgents},
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
// decoder it replaced: both accept or both reject, and accepted input
// gives the same agents.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want []Agent
		err := DecodeAgents(bytes.NewReader(data), func(a Agent) error { got = append(got, a); return nil })
		errV1 := decodeAgentsV1(bytes.NewReader(data), func(a Agent) error { want = append(want, a); return nil })
		if (err == nil) != (errV1 == nil) {
			t.Fatalf("%q: jsontext: %v; encoding/json: %v", data, err, errV1)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%q: %v does not wrap ErrMalformed", data, err)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\njsontext:      %+v\nencoding/json: %+v", data, got, want)
		}
	})
}
