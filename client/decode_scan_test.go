package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// decodeEdgeCases are inputs the scanner treats specially: seeds of both
// fuzz targets and cases of TestDecodeParityEdges.
var decodeEdgeCases = func() []string {
	cases := []string{
		// Numbers, skipped and kept.
		`[{"id":"a","x":-0,"y":1e5,"z":1E+5,"w":-1.5e-3,"v":0.0,"u":[0,-0,1,10,1e0]}]`,
		`[{"id":"a","x":01}]`, `[{"id":"a","x":-}]`, `[{"id":"a","x":1.}]`, `[{"id":"a","x":.5}]`, `[{"id":"a","x":+1}]`,
		`[{"id":"a","x":1e}]`, `[{"id":"a","x":1e+}]`, `[{"id":"a","x":-01}]`, `[{"id":"a","x":0x1}]`, `[{"id":"a","x":--1}]`,
		`[{"id":"a","x":1`, `[{"id":"a","x":-`, `[{"id":"a","x":1.5`,
		`[{"id":"a","priority":-0}]`, `[{"id":"a","priority":1e5}]`, `[{"id":"a","priority":01}]`, `[{"id":"a","priority":1.0}]`,
		`[{"id":"a","priority":9223372036854775807}]`, `[{"id":"a","priority":9223372036854775808}]`,
		`[{"id":"a","priority":-9223372036854775808}]`, `[{"id":"a","priority":-9223372036854775809}]`,
		`[{"id":"a","priority":99999999999999999999}]`, `[{"id":"a","priority":3,"priority":null}]`, `[{"id":"a","priority":-}]`,
		// Literals.
		`[{"id":"a","x":tru}]`, `[{"id":"a","x":nulll}]`, `[{"id":"a","x":True}]`, `[{"id":"a","x":nul`, `[{"id":"a","paused":tr`,
		`[{"id":"a","paused":true,"paused":false}]`, `[{"id":"a","paused":fals}]`, `[nul]`, `[null`,
		// Whitespace everywhere, and what is not whitespace.
		" \t\r\n[ \t\r\n{ \t\r\n\"id\" \t\r\n: \t\r\n\"a\" \t\r\n, \"x\" : [ 1 , { \"y\" : null } ] , \"meta_data\" : [ \"k=v\" , null ] } \t\r\n, { \"id\" : \"b\" } ] \t\r\n",
		"[{\"id\":\"a\"}\f]", "[{\"id\":\"a\"}\v]", "\xef\xbb\xbf[]", "[{\"id\":\"a\"}]\x00",
		// Strings: escapes, surrogates, controls, invalid UTF-8.
		`[{"id":"\u0061\u00e9\u4e16\ud83d\ude00\/\"\\\b\f\n\r\t"}]`, `[{"id":"a","name":"\ud800\u0041"}]`,
		`[{"id":"a","name":"\udc00\udc00","hostname":"\ud800\ud800\udc00","paused_note":"\uDBFF\uDFFF"}]`,
		`[{"id":"a","name":"\ud83d"}]`, `[{"id":"a","name":"x\ud83d\u"}]`, `[{"id":"a","name":"\u00"}]`, `[{"id":"a","name":"\x"}]`,
		"[{\"id\":\"a\",\"name\":\"a\x00b\"}]", "[{\"id\":\"a\",\"x\":\"\x1f\"}]", "[{\"id\":\"a\x7f\"}]", "[{\"id\":\"\xed\xa0\x80\"}]",
		"[{\"id\":\"a\",\"version\":\"\xc3\",\"meta_data\":[\"\xff=\xfe\",\"k=\\u00e9\",\"\\ud800\"]}]",
		`[{"id":"a\`, `[{"id":"a\u00`, `[{"id":"a","x":"\u`, `[{"id":"a","x":"abc`, `[{"id":"a","x":"0123456789abcdef`, `["`,
		// Member names: prediction from the previous agent, folding, escapes.
		`[{"id":"a","name":"x"},{"id":"b","nbme":"y"},{"id":"c","name":"z"}]`,
		`[{"id":"a","name":"x"},{"id":"b","n\u0061me":"y"},{"id":"c","name":"z","names":"w","nam":"v"}]`,
		`[{"Name":"x","id":"a"},{"NAME":"y","id":"b"},{"name":"z","ID":"c"}]`,
		`[{"id":"a","paused_timeout_in_minutes":1,"last_job_finished_at":null,"connection_state":"x"},` +
			`{"id":"b","paused_timeout_in_minutes":2,"last_job_finished_at":null,"connection_statf":"y"}]`,
		`[{"id":"a","ſtate":"x","Kelvin\u212a":1,"ID":"b","job":{"ſtate":"running","ıd":"j","STARTED_AT":null}}]`,
		`[{"ıd":"a","id":"b","İD":"c","\u0131d":"d","job":{"ıd":"j","ID":"k","İd":"l"},"NAMe":"n","nAMEſ":"o","Kelvın":1}]`,
		`[{"id":"a","\u0069d":"b","i\u0064":"c"}]`, "[{\"id\":\"a\",\"id\xff\":\"b\"}]", `[{"":1,"id":"a"},{"":2,"id":"b"}]`,
		`[{"id":"a","job":{"id":"j","state":"running"}},{"id":"b","job":{"id":"k","stat":"x"}},{"id":"c","job":{"state":"x","id":"l"}}]`,
		// Interning: repeats, changes, escapes, long values, many entries.
		`[{"id":"a","version":"3.1","queue":"q"},{"id":"b","version":"3.1","queue":"r"},{"id":"c","version":"3.\u0031","queue":"q"}]`,
		`[{"id":"a","version":"x","queue":"x","arch":"x","meta_data":["x","x"]},{"id":"b","version":"x","meta_data":["y","x"]}]`,
		`[{"id":"a","meta_data":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s",""]},` +
			`{"id":"b","meta_data":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","t"]}]`,
		`[{"id":"a","user_agent":"` + strings.Repeat("u", 200) + `"},{"id":"b","user_agent":"` + strings.Repeat("u", 200) + `"}]`,
		`[{"id":"a","meta_data":[]},{"id":"b","meta_data":["",null]},{"id":"c","meta_data":[1]},{"id":"d","meta_data":[[]]}]`,
		`[{"id":"a","meta_data":["x"],"meta_data":["y"]},{"id":"b","meta_data":["x"],"meta_data":null}]`,
		`[{"id":"a","meta_data":["x" "y"]}]`, `[{"id":"a","meta_data":["x",]}]`, `[{"id":"a","meta_data":{}}]`, `[{"id":"a","meta_data":"x"}]`,
		`[{"id":"a","connection_state":null,"connection_state":"connected"},{"id":"b","connection_state":"connected","connection_state":null}]`,
		// Timestamps: the fast shapes and their neighbours.
		`[{"id":"a","created_at":"2024-02-24T22:33:45.263Z","connected_at":"2024-02-24T22:33:46Z","lost_at":"2024-02-24T22:33:45.2Z"}]`,
		`[{"id":"a","created_at":"2024-02-30T22:33:45.263Z"}]`, `[{"id":"a","created_at":"2024-02-24T22:33:45.26xZ"}]`,
		`[{"id":"a","created_at":"2024-02-24T22:33:45.263+00:00","stopped_at":"2024-02-24 22:33:45Z"}]`,
		`[{"id":"a","created_at":"2024-02-24T22:33:45.123456789123Z","paused_at":"2016-02-29T00:00:00Z"}]`,
		`[{"id":"a","created_at":"1900-02-29T00:00:00Z"}]`, `[{"id":"a","created_at":"0000-01-01T00:00:00Z"}]`,
		`[{"id":"a","created_at":"2024-02-24T22:33:45.263Z`, `[{"id":"a","created_at":"2024-02-24T22:33:45.263Z"`,
		`[{"id":"a","created_at":"2024-02-24T22:33:45.263Z\u0000"}]`, `[{"id":"a","created_at":"\u0032024-02-24T22:33:45Z"}]`,
		`[{"id":"a","created_at":"","job":{"started_at":""}}]`, `[{"id":"a","created_at":1}]`, `[{"id":"a","created_at":[]}]`,
		// Structure.
		`[{"id":"a"} {"id":"b"}]`, `[{"id":"a"},,{"id":"b"}]`, `[{"id":"a",}]`, `[{"id":"a" "x":1}]`, `[{"id" "a"}]`, `[{id:"a"}]`,
		`[{"id":"a"}]]`, `[{"id":"a"}}`, `[{"id":"a","x":[1,2}]`, `[{"id":"a","x":{"y":1]}]`, `[{"id":"a","x":{"y"}}]`,
		`[{"id":"a","x":{1:2}}]`, `[{"id":"a","x":[,]}]`, `[{"id":"a","x":{,}}]`, `[{"id":"a","job":{"id":"j",}}]`,
		`[{"id":"a","job":[]}]`, `[{"id":"a","job":{"id":1}}]`, `[{"id":"a","job":{"state":1}}]`,
		`[{"id":""}]`, `[{"id":null}]`, `[{"id":"a"},null]`, `[[]]`, `["x"]`, `[true]`, `[-1]`, `[{"id":"a"}] `, ` [ ] `,
	}
	// Large skipped members and deep nesting; the limit itself is in
	// decodeLimitCases.
	cases = append(cases, bigMember(200), `[{"id":"a","creator":{"x":`+nested(100, false)+`,"y":`+nested(100, true)+`}}]`,
		`[{"x":`+nested(maxDepth-1, false)+`,"id":"a"}]`, `[{"x":`+nested(maxDepth, false)+`,"id":"a"}]`)
	return cases
}()

// decodeLimitCases are inputs too large to be good fuzz seeds: a huge
// skipped member and nesting around encoding/json's limit.
var decodeLimitCases = func() []string {
	cases := []string{bigMember(5000)}
	for _, n := range []int{maxDepth - 2, maxDepth - 1, maxDepth} {
		cases = append(cases, `[{"x":`+nested(n, false)+`,"id":"a"}]`, `[{"id":"a","job":{"x":`+nested(n, true)+`}}]`)
	}
	return cases
}()

// bigMember is a page of one agent with a skipped member of n members.
func bigMember(n int) string {
	var b strings.Builder
	b.WriteString(`[{"id":"a","creator":{`)
	for i := range n {
		fmt.Fprintf(&b, `"k%d":[%d,"v%d",{"x":null,"y":[true,false,-1.5e3]}],`, i, i, i)
	}
	b.WriteString(`"end":{}},"name":"n"}]`)
	return b.String()
}

// nested is n nested arrays, or objects.
func nested(n int, objects bool) string {
	if objects {
		return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n)
	}
	return strings.Repeat("[", n) + strings.Repeat("]", n)
}

// checkParity checks DecodeAgents against the encoding/json decoder it
// replaced: both accept or both reject, and accepted input gives the same
// agents.
func checkParity(t testing.TB, data []byte) {
	t.Helper()
	var got, want []Agent
	err := DecodeAgents(bytes.NewReader(data), func(a Agent) error { got = append(got, a); return nil })
	errV1 := decodeAgentsV1(bytes.NewReader(data), func(a Agent) error { want = append(want, a); return nil })
	if errV1 == nil && errors.Is(err, errTooMuchMetaData) {
		return // refused on purpose: see maxMetaData
	}
	if (err == nil) != (errV1 == nil) {
		t.Fatalf("%.300q: scanner: %v; encoding/json: %v", data, err, errV1)
	}
	if err != nil {
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("%.300q: %v does not wrap ErrMalformed", data, err)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%.300q:\nscanner:       %+v\nencoding/json: %+v", data, got, want)
	}
}

func TestDecodeParityEdges(t *testing.T) {
	for _, s := range append(decodeEdgeCases, decodeLimitCases...) {
		checkParity(t, []byte(s))
	}
	// The realistic page indented, and cut at every byte of its first agent.
	page := realisticPage(3)
	var ind bytes.Buffer
	if err := json.Indent(&ind, page, "\r\n", " \t"); err != nil {
		t.Fatal(err)
	}
	checkParity(t, ind.Bytes())
	for n := 0; n < len(page)/3; n++ {
		checkParity(t, page[:n])
	}
}

// TestDecodeDepthLimit: an agent object may nest 10000 deep, as with
// encoding/json (json.Decoder scans each element on its own); jsontext
// counted the page's array too.
func TestDecodeDepthLimit(t *testing.T) {
	for _, tmpl := range []string{`[{"x":%s,"id":"a"}]`, `[{"id":"a","job":{"x":%s}}]`, `[{"id":"a","creator":{"x":[%s]}}]`} {
		var accepted, rejected int
		for n := maxDepth - 4; n <= maxDepth; n++ {
			for _, v := range []string{nested(n, false), nested(n, true)} {
				data := []byte(fmt.Sprintf(tmpl, v))
				checkParity(t, data)
				if DecodeAgents(bytes.NewReader(data), func(Agent) error { return nil }) == nil {
					accepted++
				} else {
					rejected++
				}
			}
		}
		if accepted == 0 || rejected == 0 {
			t.Errorf("%s: %d accepted, %d rejected: the limit is not in the range tested", tmpl, accepted, rejected)
		}
	}
}

// TestDecodeAgentsOwnMemory: agents share nothing with the pooled buffers
// of later pages, and one agent's MetaData cannot be appended into
// another's.
func TestDecodeAgentsOwnMemory(t *testing.T) {
	decode := func(page []byte) []Agent {
		var agents []Agent
		if err := DecodeAgents(bytes.NewReader(page), func(a Agent) error { agents = append(agents, a); return nil }); err != nil {
			t.Fatal(err)
		}
		return agents
	}
	page := realisticPage(40)
	first := decode(page)
	before, _ := json.Marshal(first)
	other := bytes.ReplaceAll(bytes.ReplaceAll(page, []byte("ci-"), []byte("xx-")), []byte("3.87.1"), []byte("9.99.9"))
	for range 20 {
		decode(other)
	}
	clear(page)
	if after, _ := json.Marshal(first); !bytes.Equal(before, after) {
		t.Fatal("agents changed by later pages")
	}
	m0, m1 := first[0].MetaData, strings.Join(first[1].MetaData, "|")
	_ = append(m0, "extra")
	*first[0].Priority = 99
	if strings.Join(first[1].MetaData, "|") != m1 || *first[1].Priority == 99 {
		t.Fatal("agents share memory")
	}
}

// TestDecodeAgentsConcurrent decodes pages at once (for -race).
func TestDecodeAgentsConcurrent(t *testing.T) {
	page := realisticPage(20)
	var want []Agent
	if err := decodeAgentsV1(bytes.NewReader(page), func(a Agent) error { want = append(want, a); return nil }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				var got []Agent
				if err := DecodeAgents(bytes.NewReader(page), func(a Agent) error { got = append(got, a); return nil }); err != nil {
					t.Error(err)
					return
				}
				if !reflect.DeepEqual(got, want) {
					t.Error("agents differ")
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestDecodeAgentSingle: Get an agent decodes as an element of a page.
func TestDecodeAgentSingle(t *testing.T) {
	page := realisticPage(3)
	var want []Agent
	if err := DecodeAgents(bytes.NewReader(page), func(a Agent) error { want = append(want, a); return nil }); err != nil {
		t.Fatal(err)
	}
	var objs []json.RawMessage
	if err := json.Unmarshal(page, &objs); err != nil {
		t.Fatal(err)
	}
	for i, obj := range objs {
		a, err := decodeAgent(bytes.NewReader(obj))
		if err != nil || !reflect.DeepEqual(a, want[i]) {
			t.Fatalf("agent %d: %v\n%+v\n%+v", i, err, a, want[i])
		}
	}
	for _, bad := range []string{``, ` `, `null`, `[]`, `{}`, `{"id":"a"} {}`, `{"id":"a"`, `x`, `{"id":"a"}]`} {
		if _, err := decodeAgent(strings.NewReader(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// refScanString is encoding/json's string grammar, a byte at a time.
func refScanString(b []byte, i int) (end int, ok bool) {
	for j := i + 1; j < len(b); {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			if j+1 >= len(b) {
				return 0, false
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) {
					return 0, false
				}
				for _, h := range b[j+2 : j+6] {
					if !isHex(h) {
						return 0, false
					}
				}
				j += 6
			default:
				return 0, false
			}
		default:
			j++
		}
	}
	return 0, false
}

// FuzzDecodeScanString checks scanString and appendUnquoted against the
// reference grammar and encoding/json's unquoting, at every position
// relative to the end of the buffer and to the eight-byte words.
func FuzzDecodeScanString(f *testing.F) {
	for _, s := range []string{
		`"abc"`, `"abc`, `"\u00e9"`, `"\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\udc00"`, `"\ud800\ud800\udc00"`,
		"\"a\xff\"", "\"\xed\xa0\x80\"", `"a\`, `"\u12`, "\"\x01\"", "\"\x7f\"", `"0123456789abcde"`, `"0123456789abcdef"`,
		`"0123456789abcdef0"`, `"0123456\"89abcdef"`, `"0123456789abcd\\"`, "\"0123456789abcdef\x1f\"", `"a" tail`, `""`, `"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := append([]byte{'"'}, data...)
		end, flags, err := scanString(b, 0)
		wantEnd, ok := refScanString(b, 0)
		if (err == nil) != ok || ok && end != wantEnd {
			t.Fatalf("%q: scanString %d, %v; want %d, %v", b, end, err, wantEnd, ok)
		}
		if !ok {
			return
		}
		raw := b[1 : end-1]
		var wantFlags uint8
		if bytes.IndexByte(raw, '\\') >= 0 {
			wantFlags |= strEscaped
		}
		if bytes.ContainsFunc(raw, func(r rune) bool { return r >= 0x80 }) {
			wantFlags |= strNonASCII
		}
		if flags != wantFlags {
			t.Fatalf("%q: flags %b, want %b", b, flags, wantFlags)
		}
		var want string
		if err := json.Unmarshal(b[:end], &want); err != nil {
			t.Fatalf("%q: encoding/json: %v", b[:end], err)
		}
		if got := string(appendUnquoted(nil, raw)); got != want {
			t.Fatalf("%q: unquoted %q, want %q", raw, got, want)
		}
		if plainString(raw, flags) && string(raw) != want {
			t.Fatalf("%q: plain but %q", raw, want)
		}
	})
}

// FuzzDecodeTime checks the timestamp fast path against time.Parse.
func FuzzDecodeTime(f *testing.F) {
	for _, s := range []string{
		"2015-07-30T12:58:34.000Z", "2015-07-30T12:58:34Z", "2016-02-29T00:00:00Z", "2015-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
		"2000-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "0000-02-29T00:00:00.5Z", "9999-12-31T23:59:59.999999999999Z",
		"2015-07-30T24:00:00Z", "2015-07-30T12:60:00Z", "2015-07-30T12:58:60Z", "2015-07-30T12:58:34.Z", "2015-07-30T12:58:34.1234567891Z",
		"2015-07-30T12:58:34+02:00", "2015-07-30t12:58:34z", "2015-07-30T12:58:34.000z", "-015-07-30T12:58:34Z", "2015-7-30T12:58:34Z",
		"2015-07-30T12:58:34.0000Z", "2015-07-30T12:58:34,000Z", "2015-00-10T00:00:00Z", "2015-13-10T00:00:00Z", "2015-04-31T00:00:00Z",
		"1969-12-31T23:59:59.999Z", "1970-01-01T00:00:00Z", "2015-07-30T12:58:34.000Z ", "", "Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err == nil {
			want = want.UTC()
		}
		if got, ok := parseTimeZ([]byte(s)); ok && (err != nil || got != want) {
			t.Fatalf("%q: fast path %#v, time.Parse %#v, %v", s, got, want, err)
		}
		got, ok := parseTime([]byte(s))
		if ok != (err == nil) || got != want {
			t.Fatalf("%q: parseTime %#v, %v; time.Parse %#v, %v", s, got, ok, want, err)
		}
	})
}

// FuzzDecodeNumber checks scanNumber against encoding/json and parseInt
// against strconv.ParseInt.
func FuzzDecodeNumber(f *testing.F) {
	for _, s := range []string{"0", "-0", "01", "-", "1.", ".5", "1e5", "1E+5", "-1.5e-3", "1e", "9223372036854775807",
		"9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551616", "1x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		if len(b) == 0 || b[0] != '-' && (b[0] < '0' || b[0] > '9') {
			return
		}
		end, integer, err := scanNumber(b, 0)
		whole := err == nil && skipWS(b, end) == len(b)
		if whole != json.Valid(b) {
			t.Fatalf("%q: scanNumber %d, %v; json.Valid %v", s, end, err, json.Valid(b))
		}
		if !whole || !integer {
			return
		}
		s = s[:end]
		n, ok := parseInt(b[:end])
		want, werr := strconv.ParseInt(s, 10, strconv.IntSize)
		if ok != (werr == nil) || ok && int64(n) != want {
			t.Fatalf("%q: parseInt %d, %v; strconv %d, %v", s, n, ok, want, werr)
		}
	})
}

// tagsThenAgents is a page of one agent with n meta_data entries followed
// by m agents with none.
func tagsThenAgents(n, m int) []byte {
	var b bytes.Buffer
	b.WriteString(`[{"id":"tags","meta_data":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d=v"`, i)
	}
	b.WriteString(`]}`)
	for i := range m {
		fmt.Fprintf(&b, `,{"id":"a%d"}`, i)
	}
	b.WriteString(`]`)
	return b.Bytes()
}

// An agent with many tags must not make every later agent of the page
// slower: clearing the decoder's meta_data capacity for each agent made
// this page quadratic (about 100 ms at 10,000 and 10,000, 10 s at 100,000).
func BenchmarkDecodeTagsThenAgents(b *testing.B) {
	page := tagsThenAgents(maxMetaData, 10000)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	for b.Loop() {
		if err := DecodeAgents(bytes.NewReader(page), func(Agent) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// meta_data entries are bounded per agent: past maxMetaData the page is
// refused, where a hostile page of one agent's tags would cost the decoder
// 40 bytes an entry.
func TestDecodeMetaDataLimit(t *testing.T) {
	var got []Agent
	if err := DecodeAgents(bytes.NewReader(tagsThenAgents(maxMetaData, 1)), func(a Agent) error {
		got = append(got, a)
		return nil
	}); err != nil {
		t.Fatalf("%d entries: %v", maxMetaData, err)
	}
	if len(got) != 2 || len(got[0].MetaData) != maxMetaData || got[0].MetaData[maxMetaData-1] != fmt.Sprintf("k%d=v", maxMetaData-1) || len(got[1].MetaData) != 0 {
		t.Fatalf("%d entries: %d agents, %d entries", maxMetaData, len(got), len(got[0].MetaData))
	}
	err := DecodeAgents(bytes.NewReader(tagsThenAgents(maxMetaData+1, 1)), func(Agent) error { return nil })
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "more than 10000") {
		t.Fatalf("%d entries: %v, want ErrMalformed naming the limit", maxMetaData+1, err)
	}
	// Empty entries are dropped before they count.
	page := []byte(`[{"id":"a","meta_data":[` + strings.Repeat(`"",null,`, maxMetaData) + `"k=v"]}]`)
	if err := DecodeAgents(bytes.NewReader(page), func(Agent) error { return nil }); err != nil {
		t.Fatalf("empty entries counted: %v", err)
	}
}

// Entries of an earlier, longer meta_data (another agent's, or a
// duplicate member's) never reach a later agent.
func TestDecodeMetaDataReuse(t *testing.T) {
	page := `[{"id":"a","meta_data":["a1","a2","a3","a4"]},` +
		`{"id":"b","meta_data":["b1","b2","b3"],"meta_data":["b4"]},` +
		`{"id":"c"},{"id":"d","meta_data":["d1","d2"]}]`
	want := map[string][]string{"a": {"a1", "a2", "a3", "a4"}, "b": {"b4"}, "c": nil, "d": {"d1", "d2"}}
	if err := DecodeAgents(strings.NewReader(page), func(a Agent) error {
		if !slices.Equal(a.MetaData, want[a.ID]) {
			t.Errorf("agent %s: meta_data %q, want %q", a.ID, a.MetaData, want[a.ID])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// The one documented difference from encoding/json: too many meta_data
// entries for one agent.
func TestDecodeParityMetaDataLimit(t *testing.T) {
	page := tagsThenAgents(maxMetaData+1, 0)
	if err := decodeAgentsV1(bytes.NewReader(page), func(Agent) error { return nil }); err != nil {
		t.Fatalf("encoding/json refuses the page too: %v", err)
	}
	err := DecodeAgents(bytes.NewReader(page), func(Agent) error { return nil })
	if !errors.Is(err, errTooMuchMetaData) || !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %v, want errTooMuchMetaData wrapped as ErrMalformed", err)
	}
	checkParity(t, page) // accepts the difference
}
