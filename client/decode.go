package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// The agents page is decoded by a hand-written scanner, because decoding
// was most of the exporter's CPU per scrape. Earlier versions were
// encoding/json (every agent scanned twice, then built by reflection) and
// jsontext's streaming tokenizer (~160-220 MB/s and 13 allocations per
// agent on BenchmarkDecodeAgentsPage); BenchmarkDecodeAgentsPageAlt keeps
// both for comparison. It is shaped by what a page is: ~2 KB per agent, of
// which the exporter keeps a tenth, in strings with the same member names
// in the same order from agent to agent, and values that mostly repeat.
//
//   - The body is read whole into a pooled buffer (the caller bounds its
//     size) and scanned once, in place: no tokens, no copies of what is
//     skipped. Agents are still passed to fn one by one.
//   - Strings are found and checked eight bytes at a time (scanString);
//     skipped values are checked as strictly as kept ones (skipValue).
//   - A member name is first compared with the name at the same index of
//     the previous object (keyPred), which skips scanning it.
//   - The usual timestamp shapes are parsed without time.Parse (parseTimeZ).
//   - An agent costs about one allocation: its own strings (id, name,
//     hostname, ...) share one, values that repeat across a page (version,
//     user_agent, os_id, queue, job state, meta_data entries, ...) are
//     interned per page, and Priority, Job and MetaData are carved from
//     per-page chunks.
//
// It keeps encoding/json's semantics, which the tests and fuzz targets pin
// (FuzzDecodeAgentsParity compares it with the old encoding/json decoder):
// it accepts exactly the JSON encoding/json accepts (nesting up to 10000
// deep, counted from the agent object); invalid UTF-8 and lone surrogates
// become U+FFFD; member names match exactly, else case-insensitively as
// encoding/json folds them (the Kelvin sign as K and ſ as S, but not ı or
// İ as I: foldRune); for a duplicate name the last value wins, null
// leaves a plain string or bool as it was and resets the other fields, and
// a second job object is merged into the first; empty meta_data entries
// (null or "") are dropped; timestamps are RFC 3339 as time.Parse reads
// them, null and "" being the zero time.

// Limits of what a page decoder keeps for the next page.
const (
	maxPooledBuf  = 4 << 20 // body buffer
	maxInternLen  = 128     // longest string interned
	maxInternSize = 1024    // distinct strings interned per page
	chunkLen      = 32      // Priority and Job values per chunk
	metaChunkLen  = 256     // MetaData entries per chunk
	maxKeyPreds   = 64      // members of an object whose names are predicted
)

// span is a string of an agent in pageDecoder.scratch.
type span struct{ off, end int }

// istr is an interned string member of the agent being read: s, or when
// its value is new to the page, the bytes at sp of the agent's scratch,
// interned as the agent is completed.
type istr struct {
	s       string
	sp      span
	pending bool
}

// Slots of pageDecoder.last: the interned members, then the first
// meta_data entries by index.
const (
	slotConnectionState = iota
	slotUserAgent
	slotVersion
	slotOSID
	slotArch
	slotQueue
	slotJobState
	slotMetaData
	numSlots = slotMetaData + 16
)

// keyPred is a member name seen at some index of an object, name being
// buf[off:end]: the next object likely has it at the same index, which a
// comparison of bytes tells faster than scanning a string.
type keyPred struct {
	off, end int
	w, mask  [3]uint64 // the name's first 24 bytes, little-endian, and which of them are
	f        field
}

// newKeyPred predicts the name b[off:end] (without escapes or controls).
func newKeyPred(b []byte, off, end int, f field) keyPred {
	p := keyPred{off: off, end: end, f: f}
	for k, c := range b[off:min(end, off+24)] {
		p.w[k/8] |= uint64(c) << (8 * (k % 8))
		p.mask[k/8] |= 0xff << (8 * (k % 8))
	}
	return p
}

// matches reports whether the string at b[i] is the predicted name.
// Names of up to 24 bytes are compared as masked words, others as bytes.
// The name has neither escapes nor controls: bytes equal to it and a
// quote are that whole string.
func (p *keyPred) matches(b []byte, i int) (end int, ok bool) {
	n := p.end - p.off
	e := i + 1 + n
	if e >= len(b) || b[e] != '"' {
		return 0, false
	}
	if n > 24 || i+25 > len(b) {
		return e + 1, string(b[i+1:e]) == string(b[p.off:p.end])
	}
	x0 := binary.LittleEndian.Uint64(b[i+1:]) & p.mask[0]
	x1 := binary.LittleEndian.Uint64(b[i+9:]) & p.mask[1]
	x2 := binary.LittleEndian.Uint64(b[i+17:]) & p.mask[2]
	return e + 1, (x0^p.w[0])|(x1^p.w[1])|(x2^p.w[2]) == 0
}

// pageDecoder decodes one body; it is pooled with its buffers.
type pageDecoder struct {
	buf    []byte // the body
	stack  []byte // skipValue's open containers
	intern map[string]string
	last   [numSlots]string // the value each slot had last, ahead of intern
	tmp    []byte           // unquoted values

	agentKeys, jobKeys []keyPred // by member index, for this page

	// The agent being read. Its own strings and those new to the page are
	// written to scratch and cut from one string when it is complete.
	a                                         Agent
	scratch                                   []byte
	id, name, hostname, ip, pausedNote, jobID span
	conn, ua, version, osID, arch, queue      istr
	jobState                                  istr
	meta                                      []istr
	prio                                      int
	hasPrio, hasJob                           bool
	jobStartedAt                              time.Time

	// Chunks the agents' Priority, Job and MetaData are cut from; new for
	// each page.
	ints  []int
	jobs  []Job
	metas []string
}

var decoderPool = sync.Pool{New: func() any { return &pageDecoder{intern: make(map[string]string, 64)} }}

func getDecoder() *pageDecoder { return decoderPool.Get().(*pageDecoder) }

// putDecoder pools d without anything of the page but its buffers.
func putDecoder(d *pageDecoder) {
	if cap(d.buf) > maxPooledBuf {
		d.buf = nil
	}
	if cap(d.scratch) > 64<<10 {
		d.scratch = nil
	}
	if cap(d.tmp) > 64<<10 {
		d.tmp = nil
	}
	if cap(d.meta) > 4096 {
		d.meta = nil
	}
	d.buf, d.scratch, d.tmp, d.meta = d.buf[:0], d.scratch[:0], d.tmp[:0], d.meta[:0]
	d.agentKeys, d.jobKeys = d.agentKeys[:0], d.jobKeys[:0]
	clear(d.intern)
	d.last = [numSlots]string{}
	d.clearAgent()
	d.ints, d.jobs, d.metas = nil, nil, nil
	decoderPool.Put(d)
}

// clearAgent readies d for the next agent. Only d.meta's length is
// cleared: every reset of it clears what it held, so the rest of its
// capacity is already zero (clearing the capacity made a page with one
// agent of many entries quadratic).
func (d *pageDecoder) clearAgent() {
	d.a = Agent{}
	clear(d.meta)
	d.scratch, d.meta = d.scratch[:0], d.meta[:0]
	d.id, d.name, d.hostname, d.ip, d.pausedNote, d.jobID = span{}, span{}, span{}, span{}, span{}, span{}
	d.conn, d.ua, d.version, d.osID, d.arch, d.queue, d.jobState = istr{}, istr{}, istr{}, istr{}, istr{}, istr{}, istr{}
	d.hasPrio, d.hasJob, d.jobStartedAt = false, false, time.Time{}
}

// read reads r to its end into d.buf.
func (d *pageDecoder) read(r io.Reader) error {
	b := d.buf[:0]
	if cap(b) == 0 {
		b = make([]byte, 0, 64<<10)
	}
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, cap(b))
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			d.buf = b
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// DecodeAgents reads a JSON array of agent objects from r and calls fn for
// each agent in order. The body is read to its end first (the caller bounds
// its size); agents are passed to fn as they are decoded. Unknown fields
// are ignored and nulls read as unset. Errors of the input (not an array,
// null, an empty body, trailing data, wrong types, a bad timestamp, an
// agent without id) wrap ErrMalformed, and so do the reader's, which stay
// reachable with errors.Is; an error from fn is returned as it is and stops
// decoding.
//
// Every agent passed to fn has a non-empty ID, valid UTF-8 strings, UTC or
// zero timestamps, and only non-empty MetaData entries.
func DecodeAgents(r io.Reader, fn func(Agent) error) error {
	d := getDecoder()
	defer putDecoder(d)
	if err := d.read(r); err != nil {
		return malformed(err)
	}
	b := d.buf
	i := skipWS(b, 0)
	if i >= len(b) {
		return malformed(errEOF)
	}
	if b[i] != '[' {
		if k := kindOf(b[i]); k != "" {
			return fmt.Errorf("%w: expected a JSON array of agents, got %s", ErrMalformed, k)
		}
		return malformed(syntaxError(b, i))
	}
	if i = skipWS(b, i+1); i < len(b) && b[i] == ']' {
		return d.expectEnd(i + 1)
	}
	for n := 0; ; n++ {
		var err error
		if i, err = d.agentValue(i); err != nil {
			return fmt.Errorf("%w: agent %d: %w", ErrMalformed, n, err)
		}
		if err := fn(d.agent()); err != nil {
			return err
		}
		switch i = skipWS(b, i); {
		case i >= len(b):
			return malformed(errEOF)
		case b[i] == ',':
			i = skipWS(b, i+1)
		case b[i] == ']':
			return d.expectEnd(i + 1)
		default:
			return malformed(syntaxError(b, i))
		}
	}
}

// decodeAgent reads a single agent object, as Get an agent returns it.
func decodeAgent(r io.Reader) (Agent, error) {
	d := getDecoder()
	defer putDecoder(d)
	if err := d.read(r); err != nil {
		return Agent{}, malformed(err)
	}
	b := d.buf
	i := skipWS(b, 0)
	switch {
	case i >= len(b):
		return Agent{}, malformed(errEOF)
	case b[i] == 'n':
		return Agent{}, fmt.Errorf("%w: null instead of an agent", ErrMalformed)
	case b[i] != '{':
		if k := kindOf(b[i]); k != "" {
			return Agent{}, fmt.Errorf("%w: expected an agent object, got %s", ErrMalformed, k)
		}
		return Agent{}, malformed(syntaxError(b, i))
	}
	i, err := d.agentValue(i)
	if err != nil {
		return Agent{}, malformed(err)
	}
	a := d.agent()
	if err := d.expectEnd(i); err != nil {
		return Agent{}, err
	}
	return a, nil
}

// expectEnd checks that only whitespace follows b[i].
func (d *pageDecoder) expectEnd(i int) error {
	if skipWS(d.buf, i) < len(d.buf) {
		return fmt.Errorf("%w: trailing data after the JSON value", ErrMalformed)
	}
	return nil
}

var errNoID = errors.New("agent without id")

// malformed wraps a decoding error. A bare io.EOF or io.ErrUnexpectedEOF
// means the body ended before (or instead of) the value; the reader's own
// errors stay reachable with errors.Is.
func malformed(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: empty or truncated body", ErrMalformed)
	}
	return fmt.Errorf("%w: %w", ErrMalformed, err)
}

// agentValue reads the array element at b[i] (not whitespace) as an agent
// and returns the index after it. An agent must be an object with an id;
// null is one without.
func (d *pageDecoder) agentValue(i int) (int, error) {
	b := d.buf
	if i >= len(b) {
		return i, errEOF
	}
	switch b[i] {
	case '{':
	case 'n':
		if i, err := scanLiteral(b, i, "null"); err != nil {
			return i, err
		}
		return i, errNoID
	default:
		return i, typeError(b, i, "agent", "an object")
	}
	d.clearAgent()
	i, err := d.agentObject(i)
	if err != nil {
		return i, err
	}
	if d.id.end == d.id.off {
		return i, errNoID
	}
	return i, nil
}

// agentObject reads the members of the agent object at b[i] == '{'.
func (d *pageDecoder) agentObject(i int) (int, error) { return d.object(i, false, d.agentMember) }

// agentMember reads the value at b[i] of an agent's member f.
func (d *pageDecoder) agentMember(i int, f field) (int, error) {
	switch f {
	case fID:
		return d.readString(i, &d.id, "id")
	case fName:
		return d.readString(i, &d.name, "name")
	case fHostname:
		return d.readString(i, &d.hostname, "hostname")
	case fIPAddress:
		return d.readString(i, &d.ip, "ip_address")
	case fPausedNote:
		return d.readString(i, &d.pausedNote, "paused_note")
	case fConnectionState:
		return d.readInterned(i, &d.conn, slotConnectionState, "connection_state")
	case fUserAgent:
		return d.readInterned(i, &d.ua, slotUserAgent, "user_agent")
	case fVersion:
		return d.readInterned(i, &d.version, slotVersion, "version")
	case fOSID:
		return d.readInterned(i, &d.osID, slotOSID, "os_id")
	case fArch:
		return d.readInterned(i, &d.arch, slotArch, "arch")
	case fQueue:
		return d.readInterned(i, &d.queue, slotQueue, "queue")
	case fCreatedAt:
		return d.readTime(i, &d.a.CreatedAt, "created_at")
	case fConnectedAt:
		return d.readTime(i, &d.a.ConnectedAt, "connected_at")
	case fDisconnectedAt:
		return d.readTime(i, &d.a.DisconnectedAt, "disconnected_at")
	case fLostAt:
		return d.readTime(i, &d.a.LostAt, "lost_at")
	case fStoppedAt:
		return d.readTime(i, &d.a.StoppedAt, "stopped_at")
	case fLastJobFinishedAt:
		return d.readTime(i, &d.a.LastJobFinishedAt, "last_job_finished_at")
	case fPausedAt:
		return d.readTime(i, &d.a.PausedAt, "paused_at")
	case fMetaData:
		return d.readMetaData(i)
	case fPriority:
		return d.readPriority(i)
	case fPaused:
		return d.readBool(i, &d.a.Paused, "paused")
	case fJob:
		return d.readJob(i)
	default:
		return d.skipMember(i, 1)
	}
}

// object reads the members of the agent (or job) object at b[i] == '{',
// each value with value.
func (d *pageDecoder) object(i int, job bool, value func(i int, f field) (int, error)) (int, error) {
	b := d.buf
	if i = skipWS(b, i+1); i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		var f field
		var err error
		if i, f, err = d.member(i, n, job); err != nil {
			return i, err
		}
		if i, err = value(i, f); err != nil {
			return i, err
		}
		var more bool
		if i, more, err = d.afterValue(i, '}'); err != nil || !more {
			return i, err
		}
	}
}

// member reads the name and colon of the n-th member of an agent (or a
// job) object at b[i], and returns the index of its value and its field.
// The name is first compared with the n-th name of the previous object.
func (d *pageDecoder) member(i, n int, job bool) (int, field, error) {
	b := d.buf
	if i >= len(b) || b[i] != '"' {
		return i, fUnknown, syntaxError(b, i)
	}
	keys := &d.agentKeys
	if job {
		keys = &d.jobKeys
	}
	var f field
	end := -1
	if n < len(*keys) {
		p := &(*keys)[n]
		if e, ok := p.matches(b, i); ok {
			end, f = e, p.f
		}
	}
	if end < 0 {
		var flags uint8
		var err error
		if end, flags, err = scanString(b, i); err != nil {
			return end, fUnknown, err
		}
		name := b[i+1 : end-1]
		if job {
			f = jobField(name, flags)
		} else {
			f = agentField(name, flags)
		}
		if flags == 0 && n <= len(*keys) && n < maxKeyPreds {
			p := newKeyPred(b, i+1, end-1, f)
			if n == len(*keys) {
				*keys = append(*keys, p)
			} else {
				(*keys)[n] = p
			}
		}
	}
	if i = skipWS(b, end); i >= len(b) || b[i] != ':' {
		return i, fUnknown, syntaxError(b, i)
	}
	if i = skipWS(b, i+1); i >= len(b) {
		return i, fUnknown, errEOF
	}
	return i, f, nil
}

// skipMember skips the value at b[i] of a member not kept, in an object at
// depth: scalars here, objects and arrays in skipValue.
func (d *pageDecoder) skipMember(i, depth int) (int, error) {
	switch c := d.buf[i]; c {
	case '"':
		end, _, err := scanString(d.buf, i)
		return end, err
	case 'n':
		return scanLiteral(d.buf, i, "null")
	case 'f':
		return scanLiteral(d.buf, i, "false")
	case 't':
		return scanLiteral(d.buf, i, "true")
	case '{', '[':
		return d.skipValue(i, depth)
	}
	end, _, err := scanNumber(d.buf, i)
	return end, err
}

// afterValue reads what follows a member or an element at b[i:]: a comma
// (more is true and next is the following one) or end, the object's or
// array's closing byte.
func (d *pageDecoder) afterValue(i int, end byte) (next int, more bool, err error) {
	b := d.buf
	switch i = skipWS(b, i); {
	case i >= len(b):
		return i, false, errEOF
	case b[i] == ',':
		return skipWS(b, i+1), true, nil
	case b[i] == end:
		return i + 1, false, nil
	default:
		return i, false, syntaxError(b, i)
	}
}

// readJob reads the job member at b[i]: null clears it, an object is
// merged into the job read so far (a duplicate "job" member), as
// encoding/json does.
func (d *pageDecoder) readJob(i int) (int, error) {
	b := d.buf
	switch b[i] {
	case '{':
	case 'n':
		d.hasJob = false
		return scanLiteral(b, i, "null")
	default:
		return i, typeError(b, i, "job", "a job object or null")
	}
	if !d.hasJob {
		d.hasJob, d.jobID, d.jobState, d.jobStartedAt = true, span{}, istr{}, time.Time{}
	}
	return d.object(i, true, d.jobMember)
}

// jobMember reads the value at b[i] of a job's member f.
func (d *pageDecoder) jobMember(i int, f field) (int, error) {
	switch f {
	case fID:
		return d.readString(i, &d.jobID, "job id")
	case fState:
		return d.readInterned(i, &d.jobState, slotJobState, "job state")
	case fStartedAt:
		return d.readTime(i, &d.jobStartedAt, "job started_at")
	default:
		return d.skipMember(i, 2)
	}
}

// readString reads the string member at b[i] into d.scratch; null leaves
// dst as it was.
func (d *pageDecoder) readString(i int, dst *span, what string) (int, error) {
	b := d.buf
	end, flags, null, err := d.stringMember(i, what)
	if err != nil || null {
		return end, err
	}
	off := len(d.scratch)
	if raw := b[i+1 : end-1]; plainString(raw, flags) {
		d.scratch = append(d.scratch, raw...)
	} else {
		d.scratch = appendUnquoted(d.scratch, raw)
	}
	*dst = span{off, len(d.scratch)}
	return end, nil
}

// readInterned reads a string member of which a fleet has few distinct
// values; null is "".
func (d *pageDecoder) readInterned(i int, dst *istr, slot int, what string) (int, error) {
	end, flags, null, err := d.stringMember(i, what)
	if null {
		*dst = istr{}
	}
	if err != nil || null {
		return end, err
	}
	*dst = d.internValue(d.buf[i+1:end-1], flags, slot)
	return end, nil
}

// stringMember scans the member at b[i], which must be a string or null
// (null reports true).
func (d *pageDecoder) stringMember(i int, what string) (end int, flags uint8, null bool, err error) {
	b := d.buf
	switch b[i] {
	case '"':
		end, flags, err = scanString(b, i)
		return end, flags, false, err
	case 'n':
		end, err = scanLiteral(b, i, "null")
		return end, 0, true, err
	}
	return i, 0, false, typeError(b, i, what, "a string")
}

// internValue returns the value of a scanned string's raw bytes: the
// string already seen in this page (first in slot, the last value of the
// same member), or else bytes in scratch to be interned with the agent.
func (d *pageDecoder) internValue(raw []byte, flags uint8, slot int) istr {
	if !plainString(raw, flags) {
		d.tmp = appendUnquoted(d.tmp[:0], raw)
		raw = d.tmp
	}
	if slot < numSlots && d.last[slot] == string(raw) { // no allocation in these lookups
		return istr{s: d.last[slot]}
	}
	s, ok := d.intern[string(raw)]
	if !ok {
		s, ok = commonStrings[string(raw)]
	}
	if ok {
		if slot < numSlots {
			d.last[slot] = s
		}
		return istr{s: s}
	}
	off := len(d.scratch)
	d.scratch = append(d.scratch, raw...)
	return istr{sp: span{off, len(d.scratch)}, pending: true}
}

// resolve returns the value of v, interning a pending one: cut from all,
// the agent's strings.
func (d *pageDecoder) resolve(v istr, all string, slot int) string {
	if !v.pending {
		return v.s
	}
	s := all[v.sp.off:v.sp.end]
	if t, ok := d.intern[s]; ok { // new to the page twice in one agent
		s = t
	} else if len(s) <= maxInternLen && len(d.intern) < maxInternSize {
		d.intern[s] = s
	}
	if slot < numSlots {
		d.last[slot] = s
	}
	return s
}

// commonStrings are values shared by all pages; read-only after init.
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

var errBadTime = errors.New("invalid RFC 3339 timestamp")

// readTime reads a timestamp member: RFC 3339 with or without fractional
// seconds, in UTC; null and "" are the zero time.
func (d *pageDecoder) readTime(i int, dst *time.Time, what string) (int, error) {
	b := d.buf
	switch b[i] {
	case '"':
	case 'n':
		*dst = time.Time{}
		return scanLiteral(b, i, "null")
	default:
		if kindOf(b[i]) == "" {
			return i, syntaxError(b, i)
		}
		return i, fmt.Errorf("%s: %w", what, errBadTime)
	}
	// The usual shapes, 2006-01-02T15:04:05Z and 2006-01-02T15:04:05.000Z,
	// hold no byte that would need scanning the string.
	for _, n := range [...]int{24, 20} {
		if e := i + 1 + n; e < len(b) && b[e] == '"' {
			if t, ok := parseTimeZ(b[i+1 : e]); ok {
				*dst = t
				return e + 1, nil
			}
		}
	}
	end, flags, err := scanString(b, i)
	if err != nil {
		return end, err
	}
	raw := b[i+1 : end-1]
	if flags&strEscaped != 0 { // legal JSON, if unlikely
		d.tmp = appendUnquoted(d.tmp[:0], raw)
		raw = d.tmp
	}
	if len(raw) == 0 {
		*dst = time.Time{}
		return end, nil
	}
	t, ok := parseTime(raw)
	if !ok {
		return end, fmt.Errorf("%s: %w", what, errBadTime)
	}
	*dst = t
	return end, nil
}

var errBadMetaData = errors.New("meta_data is not an array of strings")

// maxMetaData bounds the meta_data entries of one agent: a real agent has a
// handful, and each entry costs the decoder about 40 bytes while it reads
// (a 16 MiB page of one agent's tags would take over 700 MB). Past it the
// page is refused, where encoding/json would accept it.
const maxMetaData = 10000

var errTooMuchMetaData = fmt.Errorf("meta_data: more than %d entries", maxMetaData)

// readMetaData reads the meta_data array of strings, or null. Empty
// entries (null or "") carry nothing and are dropped.
func (d *pageDecoder) readMetaData(i int) (int, error) {
	b := d.buf
	clear(d.meta) // a duplicate meta_data member: see clearAgent
	d.meta = d.meta[:0]
	switch b[i] {
	case '[':
	case 'n':
		return scanLiteral(b, i, "null")
	default:
		if kindOf(b[i]) == "" {
			return i, syntaxError(b, i)
		}
		return i, errBadMetaData
	}
	if i = skipWS(b, i+1); i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		if i >= len(b) {
			return i, errEOF
		}
		switch b[i] {
		case '"':
			end, flags, err := scanString(b, i)
			if err != nil {
				return end, err
			}
			if end-i > 2 {
				if len(d.meta) == maxMetaData {
					return i, errTooMuchMetaData
				}
				d.meta = append(d.meta, d.internValue(b[i+1:end-1], flags, slotMetaData+len(d.meta)))
			}
			i = end
		case 'n':
			var err error
			if i, err = scanLiteral(b, i, "null"); err != nil {
				return i, err
			}
		default:
			if kindOf(b[i]) == "" {
				return i, syntaxError(b, i)
			}
			return i, errBadMetaData
		}
		next, more, err := d.afterValue(i, ']')
		if err != nil || !more {
			return next, err
		}
		i = next
	}
}

var errBadPriority = errors.New("priority: not an integer in range")

// readPriority reads an integer or null, as encoding/json reads a *int.
func (d *pageDecoder) readPriority(i int) (int, error) {
	b := d.buf
	switch c := b[i]; {
	case c == 'n':
		d.hasPrio = false
		return scanLiteral(b, i, "null")
	case c == '-' || '0' <= c && c <= '9':
	default:
		return i, typeError(b, i, "priority", "an integer")
	}
	end, integer, err := scanNumber(b, i)
	if err != nil {
		return end, err
	}
	if !integer {
		return end, errBadPriority
	}
	n, ok := parseInt(b[i:end])
	if !ok {
		return end, errBadPriority
	}
	d.prio, d.hasPrio = n, true
	return end, nil
}

// readBool reads true or false; null leaves dst as it was.
func (d *pageDecoder) readBool(i int, dst *bool, what string) (int, error) {
	b := d.buf
	switch b[i] {
	case 't':
		*dst = true
		return scanLiteral(b, i, "true")
	case 'f':
		*dst = false
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	}
	return i, typeError(b, i, what, "a boolean")
}

// agent returns the agent read last. Its own strings, and those new to
// the page, are cut from one allocation; Priority, Job and MetaData come
// from the page's chunks, the MetaData slice capped at its length so that
// appending to it copies.
func (d *pageDecoder) agent() Agent {
	a := d.a
	all := string(d.scratch)
	a.ID = all[d.id.off:d.id.end]
	a.Name = all[d.name.off:d.name.end]
	a.Hostname = all[d.hostname.off:d.hostname.end]
	a.IPAddress = all[d.ip.off:d.ip.end]
	a.PausedNote = all[d.pausedNote.off:d.pausedNote.end]
	a.ConnectionState = d.resolve(d.conn, all, slotConnectionState)
	a.UserAgent = d.resolve(d.ua, all, slotUserAgent)
	a.Version = d.resolve(d.version, all, slotVersion)
	a.OSID = d.resolve(d.osID, all, slotOSID)
	a.Arch = d.resolve(d.arch, all, slotArch)
	a.Queue = d.resolve(d.queue, all, slotQueue)
	if d.hasPrio {
		if len(d.ints) == cap(d.ints) {
			d.ints = make([]int, 0, chunkLen)
		}
		d.ints = append(d.ints, d.prio)
		a.Priority = &d.ints[len(d.ints)-1]
	}
	if d.hasJob {
		if len(d.jobs) == cap(d.jobs) {
			d.jobs = make([]Job, 0, chunkLen)
		}
		d.jobs = append(d.jobs, Job{
			ID:        all[d.jobID.off:d.jobID.end],
			State:     d.resolve(d.jobState, all, slotJobState),
			StartedAt: d.jobStartedAt,
		})
		a.Job = &d.jobs[len(d.jobs)-1]
	}
	if n := len(d.meta); n > 0 {
		if cap(d.metas)-len(d.metas) < n {
			d.metas = make([]string, 0, max(metaChunkLen, n))
		}
		start := len(d.metas)
		for k, v := range d.meta {
			d.metas = append(d.metas, d.resolve(v, all, slotMetaData+k))
		}
		a.MetaData = d.metas[start : start+n : start+n]
	}
	return a
}
