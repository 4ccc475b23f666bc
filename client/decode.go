package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

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

var errNoID = errors.New("agent without id")

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

var errBadMetaData = errors.New("meta_data is not an array of strings")

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

var errBadTime = errors.New("invalid RFC 3339 timestamp")

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

// commonStrings are the values shared; the map is read-only after init.
var commonStrings = map[string]string{}

func init() {
	for _, s := range []string{
		"connected", "disconnected", "stopping", "stopped", "lost", "never_connected",
		"assigned", "accepted", "running", "canceling", "timing_out", "scheduled", "waiting",
		"linux", "darwin", "windows", "freebsd", "amd64", "arm64", "386", "arm", "default",
	} {
		commonStrings[s] = s
	}
}

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

// DecodeAgents reads a JSON array of agent objects from r as a stream and
// calls fn for each agent in order, so a page is never held as raw bytes or
// generic maps. Unknown fields are ignored and nulls read as unset. Errors
// of the input (not an array, null, an empty body, trailing data, wrong
// types, a bad timestamp, an agent without id) wrap ErrMalformed; an error
// from fn is returned as it is and stops decoding.
//
// Every agent passed to fn has a non-empty ID, valid UTF-8 strings, UTC or
// zero timestamps, and only non-empty MetaData entries.
func DecodeAgents(r io.Reader, fn func(Agent) error) error {
	d := textDecoder{dec: jsontext.NewDecoder(r, textOptions...)}
	dec := d.dec
	switch k := dec.PeekKind(); k {
	case '[':
	case 0:
		_, err := dec.ReadToken()
		return malformed(textError(err))
	default:
		return fmt.Errorf("%w: expected a JSON array of agents, got %s", ErrMalformed, describeKind(k))
	}
	if _, err := dec.ReadToken(); err != nil {
		return malformed(textError(err))
	}
	// One wireAgent for the page: a new one per agent would cost an
	// allocation each. An unreadable next value fails in object.
	var w wireAgent
	for i := 0; dec.PeekKind() != ']'; i++ {
		w = wireAgent{}
		if err := d.object(&w); err != nil {
			return fmt.Errorf("%w: agent %d: %w", ErrMalformed, i, textError(err))
		}
		a, err := w.agent()
		if err != nil {
			return fmt.Errorf("%w: agent %d: %w", ErrMalformed, i, err)
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	if _, err := dec.ReadToken(); err != nil { // the closing ]
		return malformed(textError(err))
	}
	return expectEOF(dec)
}

// decodeAgent reads a single agent object, as Get an agent returns it.
func decodeAgent(r io.Reader) (Agent, error) {
	d := textDecoder{dec: jsontext.NewDecoder(r, textOptions...)}
	dec := d.dec
	switch k := dec.PeekKind(); k {
	case '{':
	case 'n':
		return Agent{}, fmt.Errorf("%w: null instead of an agent", ErrMalformed)
	case 0:
		_, err := dec.ReadToken()
		return Agent{}, malformed(textError(err))
	default:
		return Agent{}, fmt.Errorf("%w: expected an agent object, got %s", ErrMalformed, describeKind(k))
	}
	var w wireAgent
	if err := d.object(&w); err != nil {
		return Agent{}, malformed(textError(err))
	}
	a, err := w.agent()
	if err != nil {
		return Agent{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := expectEOF(dec); err != nil {
		return Agent{}, err
	}
	return a, nil
}

func expectEOF(dec *jsontext.Decoder) error {
	_, err := dec.ReadToken()
	switch {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return fmt.Errorf("%w: trailing data after the JSON value", ErrMalformed)
	default:
		return malformed(textError(err))
	}
}

// malformed wraps a decoding error. A bare io.EOF or io.ErrUnexpectedEOF
// means the body ended before (or instead of) the value; the reader's own
// errors stay reachable with errors.Is.
func malformed(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: empty or truncated body", ErrMalformed)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}
