package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// The page is read with jsontext's streaming tokenizer (the encoding/json/v2
// prototype): one pass over the bytes, the kept fields read as raw values in
// the decoder's buffer, everything else (creator, job URLs, ...) skipped
// without being copied. encoding/json scans every agent object twice
// (Decoder.readValue to find its end, then reflection) and was 2/3 of the
// collection's CPU.
//
// It keeps encoding/json's semantics, which the tests and fuzz targets pin:
// invalid UTF-8 and lone surrogates become U+FFFD; member names match
// exactly, else case-insensitively as encoding/json folds them; for a
// duplicate name the last value wins, null leaves a plain string or bool
// as it was and resets the other fields, and a second job object is merged
// into the first.

// textOptions are v1's: invalid UTF-8 is accepted (and replaced where kept),
// duplicate names too (the last wins; checking them costs a set per object).
var textOptions = []jsontext.Options{jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)}

// field identifies a member kept from an agent or job object.
type field uint8

const (
	fUnknown field = iota
	fID
	fName
	fConnectionState
	fHostname
	fIPAddress
	fUserAgent
	fVersion
	fOSID
	fArch
	fQueue
	fMetaData
	fPriority
	fCreatedAt
	fConnectedAt
	fDisconnectedAt
	fLostAt
	fStoppedAt
	fLastJobFinishedAt
	fPaused
	fPausedAt
	fPausedNote
	fJob
	fState     // job
	fStartedAt // job
)

// agentFields are an agent's kept members by name, folded as encoding/json
// folds names for its case-insensitive match (ASCII letters upper-cased).
var agentFields = map[string]field{
	"ID": fID, "NAME": fName, "CONNECTION_STATE": fConnectionState, "HOSTNAME": fHostname,
	"IP_ADDRESS": fIPAddress, "USER_AGENT": fUserAgent, "VERSION": fVersion, "OS_ID": fOSID,
	"ARCH": fArch, "QUEUE": fQueue, "META_DATA": fMetaData, "PRIORITY": fPriority,
	"CREATED_AT": fCreatedAt, "CONNECTED_AT": fConnectedAt, "DISCONNECTED_AT": fDisconnectedAt,
	"LOST_AT": fLostAt, "STOPPED_AT": fStoppedAt, "LAST_JOB_FINISHED_AT": fLastJobFinishedAt,
	"PAUSED": fPaused, "PAUSED_AT": fPausedAt, "PAUSED_NOTE": fPausedNote, "JOB": fJob,
}

var jobFields = map[string]field{"ID": fID, "STATE": fState, "STARTED_AT": fStartedAt}

// agentField maps a raw (quoted) member name of an agent object to its field.
func agentField(raw []byte) field {
	switch string(raw[1 : len(raw)-1]) { // the exact names Buildkite sends; no allocation
	case "id":
		return fID
	case "name":
		return fName
	case "connection_state":
		return fConnectionState
	case "hostname":
		return fHostname
	case "ip_address":
		return fIPAddress
	case "user_agent":
		return fUserAgent
	case "version":
		return fVersion
	case "os_id":
		return fOSID
	case "arch":
		return fArch
	case "queue":
		return fQueue
	case "meta_data":
		return fMetaData
	case "priority":
		return fPriority
	case "created_at":
		return fCreatedAt
	case "connected_at":
		return fConnectedAt
	case "disconnected_at":
		return fDisconnectedAt
	case "lost_at":
		return fLostAt
	case "stopped_at":
		return fStoppedAt
	case "last_job_finished_at":
		return fLastJobFinishedAt
	case "paused":
		return fPaused
	case "paused_at":
		return fPausedAt
	case "paused_note":
		return fPausedNote
	case "job":
		return fJob
	}
	return foldedField(raw, agentFields)
}

func jobField(raw []byte) field {
	switch string(raw[1 : len(raw)-1]) {
	case "id":
		return fID
	case "state":
		return fState
	case "started_at":
		return fStartedAt
	}
	return foldedField(raw, jobFields)
}

// foldedField is encoding/json's fallback match: the name unquoted, folded
// (appendFoldedName in encoding/json's fold.go) and looked up. A name of
// lower-case ASCII without escapes that matched no field exactly cannot
// match folded, which is every unknown field Buildkite sends.
func foldedField(raw []byte, fields map[string]field) field {
	name := raw[1 : len(raw)-1]
	plain := true
	for _, c := range name {
		if c == '\\' || c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			plain = false
			break
		}
	}
	if plain {
		return fUnknown
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil { // raw is a valid JSON string
		return fUnknown
	}
	var arr [32]byte
	folded := arr[:0]
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			folded = append(folded, c)
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		folded = utf8.AppendRune(folded, unicode.ToUpper(unicode.ToLower(r)))
		i += n
	}
	return fields[string(folded)]
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
		return typeError(dec, "an agent object")
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return err
		}
		f := agentField(name)
		switch f {
		case fID:
			err = readString(dec, &w.ID, "id")
		case fName:
			err = readString(dec, &w.Name, "name")
		case fHostname:
			err = readString(dec, &w.Hostname, "hostname")
		case fIPAddress:
			err = readString(dec, &w.IPAddress, "ip_address")
		case fPausedNote:
			err = readString(dec, &w.PausedNote, "paused_note")
		case fConnectionState:
			err = readInterned(dec, &w.ConnectionState)
		case fUserAgent:
			err = readInterned(dec, &w.UserAgent)
		case fVersion:
			err = readInterned(dec, &w.Version)
		case fOSID:
			err = readInterned(dec, &w.OSID)
		case fArch:
			err = readInterned(dec, &w.Arch)
		case fQueue:
			err = readInterned(dec, &w.Queue)
		case fCreatedAt:
			err = readTime(dec, &w.CreatedAt)
		case fConnectedAt:
			err = readTime(dec, &w.ConnectedAt)
		case fDisconnectedAt:
			err = readTime(dec, &w.DisconnectedAt)
		case fLostAt:
			err = readTime(dec, &w.LostAt)
		case fStoppedAt:
			err = readTime(dec, &w.StoppedAt)
		case fLastJobFinishedAt:
			err = readTime(dec, &w.LastJobFinishedAt)
		case fPausedAt:
			err = readTime(dec, &w.PausedAt)
		case fMetaData:
			var v jsontext.Value
			if v, err = dec.ReadValue(); err == nil {
				err = w.MetaData.UnmarshalJSON(v)
			}
		case fPriority:
			err = readPriority(dec, &w.Priority)
		case fPaused:
			err = readBool(dec, &w.Paused, "paused")
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
		return typeError(dec, "a job object or null")
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
		switch jobField(name) {
		case fID:
			err = readString(dec, &w.Job.ID, "job id")
		case fState:
			err = readInterned(dec, &w.Job.State)
		case fStartedAt:
			err = readTime(dec, &w.Job.StartedAt)
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

// readString reads a string member; null leaves dst as it was.
func readString(dec *jsontext.Decoder, dst *string, what string) error {
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

func readInterned(dec *jsontext.Decoder, dst *internStr) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	return dst.UnmarshalJSON(v)
}

func readTime(dec *jsontext.Decoder, dst *wireTime) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	return dst.UnmarshalJSON(v)
}

// readPriority reads an integer or null, as encoding/json reads a *int.
func readPriority(dec *jsontext.Decoder, dst **int) error {
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

// readBool reads true or false; null leaves dst as it was.
func readBool(dec *jsontext.Decoder, dst *bool, what string) error {
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

// typeError reports the next value as of the wrong kind. An unreadable
// value reports why instead.
func typeError(dec *jsontext.Decoder, want string) error {
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
