package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// The decoder DecodeAgents replaced: jsontext's streaming tokenizer (the
// encoding/json/v2 prototype), one pass over the bytes, the kept fields
// read as raw values in the decoder's buffer and decoded by the wire types
// of decode_v1_test.go. Kept as a named alternative of
// BenchmarkDecodeAgentsPageAlt.

// textOptions are v1's: invalid UTF-8 is accepted (and replaced where kept),
// duplicate names too (the last wins; checking them costs a set per object).
var textOptions = []jsontext.Options{jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)}

// textFlags are scanString's flags of a raw (quoted) JSON string.
func textFlags(raw []byte) uint8 {
	var flags uint8
	for _, c := range raw {
		if c == '\\' {
			flags |= strEscaped
		} else if c >= utf8.RuneSelf {
			flags |= strNonASCII
		}
	}
	return flags
}

// decodeAgentsText is DecodeAgents as it was with jsontext.
func decodeAgentsText(r io.Reader, fn func(Agent) error) error {
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
	return textExpectEOF(dec)
}

func textExpectEOF(dec *jsontext.Decoder) error {
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

// textDecoder reads agent objects; job is the scratch a wireAgent's Job
// points at (wireAgent.agent copies it).
type textDecoder struct {
	dec *jsontext.Decoder
	job wireJob
}

// object reads an agent object into w, which the caller has zeroed. A null
// leaves w empty, as encoding/json does.
func (d *textDecoder) object(w *wireAgent) error {
	dec := d.dec
	switch k := dec.PeekKind(); k {
	case '{':
	case 'n':
		_, err := dec.ReadValue()
		return err
	default:
		return textTypeError(dec, "an agent object")
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		f := agentField(name[1:len(name)-1], textFlags(name))
		switch f {
		case fID:
			err = textReadString(dec, &w.ID, "id")
		case fName:
			err = textReadString(dec, &w.Name, "name")
		case fHostname:
			err = textReadString(dec, &w.Hostname, "hostname")
		case fIPAddress:
			err = textReadString(dec, &w.IPAddress, "ip_address")
		case fPausedNote:
			err = textReadString(dec, &w.PausedNote, "paused_note")
		case fConnectionState:
			err = textReadInterned(dec, &w.ConnectionState)
		case fUserAgent:
			err = textReadInterned(dec, &w.UserAgent)
		case fVersion:
			err = textReadInterned(dec, &w.Version)
		case fOSID:
			err = textReadInterned(dec, &w.OSID)
		case fArch:
			err = textReadInterned(dec, &w.Arch)
		case fQueue:
			err = textReadInterned(dec, &w.Queue)
		case fCreatedAt:
			err = textReadTime(dec, &w.CreatedAt)
		case fConnectedAt:
			err = textReadTime(dec, &w.ConnectedAt)
		case fDisconnectedAt:
			err = textReadTime(dec, &w.DisconnectedAt)
		case fLostAt:
			err = textReadTime(dec, &w.LostAt)
		case fStoppedAt:
			err = textReadTime(dec, &w.StoppedAt)
		case fLastJobFinishedAt:
			err = textReadTime(dec, &w.LastJobFinishedAt)
		case fPausedAt:
			err = textReadTime(dec, &w.PausedAt)
		case fMetaData:
			var v jsontext.Value
			if v, err = dec.ReadValue(); err == nil {
				err = w.MetaData.UnmarshalJSON(v)
			}
		case fPriority:
			err = textReadPriority(dec, &w.Priority)
		case fPaused:
			err = textReadBool(dec, &w.Paused, "paused")
		case fJob:
			err = d.jobObject(w)
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// jobObject reads the job member: null clears it, an object is merged into
// the job read so far (a duplicate "job" member), as encoding/json does.
func (d *textDecoder) jobObject(w *wireAgent) error {
	dec := d.dec
	switch dec.PeekKind() {
	case '{':
	case 'n':
		w.Job = nil
		_, err := dec.ReadValue()
		return err
	default:
		return textTypeError(dec, "a job object or null")
	}
	if w.Job == nil {
		d.job = wireJob{}
		w.Job = &d.job
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		switch jobField(name[1:len(name)-1], textFlags(name)) {
		case fID:
			err = textReadString(dec, &w.Job.ID, "job id")
		case fState:
			err = textReadInterned(dec, &w.Job.State)
		case fStartedAt:
			err = textReadTime(dec, &w.Job.StartedAt)
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return err
		}
	}
	_, err := dec.ReadToken()
	return err
}

// textReadString reads a string member; null leaves dst as it was.
func textReadString(dec *jsontext.Decoder, dst *string, what string) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	switch v[0] {
	case 'n':
		return nil
	case '"':
	default:
		return fmt.Errorf("%s: expected a string, got %s", what, describeKind(v.Kind()))
	}
	if raw := v[1 : len(v)-1]; !hasEscapeOrInvalid(raw) {
		*dst = string(raw)
		return nil
	}
	return json.Unmarshal(v, dst) // escapes or invalid UTF-8, as encoding/json decodes them
}

func hasEscapeOrInvalid(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			return c == '\\' || !utf8.Valid(raw)
		}
	}
	return false
}

func textReadInterned(dec *jsontext.Decoder, dst *internStr) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	return dst.UnmarshalJSON(v)
}

func textReadTime(dec *jsontext.Decoder, dst *wireTime) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	return dst.UnmarshalJSON(v)
}

// textReadPriority reads an integer or null, as encoding/json reads a *int.
func textReadPriority(dec *jsontext.Decoder, dst **int) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	switch v[0] {
	case 'n':
		*dst = nil
		return nil
	case '"', '{', '[', 't', 'f':
		return fmt.Errorf("priority: expected an integer, got %s", describeKind(v.Kind()))
	}
	n, err := strconv.ParseInt(string(v), 10, strconv.IntSize)
	if err != nil {
		return errors.New("priority: not an integer in range")
	}
	p := int(n)
	*dst = &p
	return nil
}

// textReadBool reads true or false; null leaves dst as it was.
func textReadBool(dec *jsontext.Decoder, dst *bool, what string) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	switch v[0] {
	case 'n':
	case 't':
		*dst = true
	case 'f':
		*dst = false
	default:
		return fmt.Errorf("%s: expected a boolean, got %s", what, describeKind(v.Kind()))
	}
	return nil
}

// textTypeError reports the next value as of the wrong kind. An unreadable
// value reports why instead.
func textTypeError(dec *jsontext.Decoder, want string) error {
	k := dec.PeekKind()
	if k == 0 {
		_, err := dec.ReadValue()
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("expected %s, got %s", want, describeKind(k))
}

// describeKind names a JSON kind without quoting server data.
func describeKind(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '0':
		return "a number"
	case '"':
		return "a string"
	case '{', '}', '[', ']':
		return "'" + string(rune(k)) + "'"
	default:
		return "something else"
	}
}

// textError turns a jsontext error into one like encoding/json's: a syntax
// error keeps its offset but not its JSON pointer (object names are server
// data), and the reader's own errors (the size limit, a broken connection)
// are returned as the reader gave them.
func textError(err error) error {
	if se := (*jsontext.SyntacticError)(nil); errors.As(err, &se) {
		if errors.Is(se.Err, io.ErrUnexpectedEOF) {
			return io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%w after offset %d", se.Err, se.ByteOffset)
	}
	if inner := errors.Unwrap(err); inner != nil { // jsontext's ioError around the reader's error
		return inner
	}
	return err
}
