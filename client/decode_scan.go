package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The scanning primitives of the page decoder (decode.go). Each takes the
// page and the index of a value's first byte and returns the index just
// past it. They accept exactly what encoding/json's scanner accepts:
// whitespace is space, tab, CR and LF; strings may hold any byte but '"',
// '\\' and controls (invalid UTF-8 included) and the escapes \" \\ \/ \b
// \f \n \r \t \uXXXX; numbers are -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?;
// literals are true, false and null; objects and arrays nest at most
// maxDepth deep, counted from the agent object.

// maxDepth is encoding/json's nesting limit (scanner.go's maxNestingDepth).
// json.Decoder scans each array element on its own, so an agent object is
// at depth 1 and the page's array is not counted.
const maxDepth = 10000

// errEOF is a value cut short by the end of the body.
var errEOF = io.ErrUnexpectedEOF

// syntaxError reports b[i] as unexpected, or the body as truncated. It
// names the byte only when it is printable ASCII, not to quote server data.
func syntaxError(b []byte, i int) error {
	if i >= len(b) {
		return errEOF
	}
	if c := b[i]; ' ' < c && c < utf8.RuneSelf {
		return fmt.Errorf("invalid character %s at offset %d", strconv.QuoteRune(rune(c)), i)
	}
	return fmt.Errorf("invalid byte 0x%02x at offset %d", b[i], i)
}

// skipWS returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// Flags of a scanned string.
const (
	strEscaped  = 1 << iota // holds a backslash escape
	strNonASCII             // holds a byte >= 0x80 (perhaps invalid UTF-8)
)

// scanString scans the string whose opening quote is b[i]. It returns the
// index after the closing quote and the string's flags. Most strings (the
// member names) are short: those of up to 15 bytes without escapes are
// found by testing two words, with no loop; others go to scanStringFrom.
func scanString(b []byte, i int) (end int, flags uint8, err error) {
	j := i + 1
	if j+16 <= len(b) {
		x := binary.LittleEndian.Uint64(b[j:])
		m := specialBytes(x)
		if m == 0 {
			y := binary.LittleEndian.Uint64(b[j+8:])
			if m = specialBytes(y); m == 0 {
				return scanStringFrom(b, j+16, x|y) // a long string
			}
			k := bits.TrailingZeros64(m) >> 3
			if b[j+8+k] == '"' {
				if (x|y&(1<<(8*k)-1))&swarHi != 0 {
					flags = strNonASCII
				}
				return j + 8 + k + 1, flags, nil
			}
		} else {
			k := bits.TrailingZeros64(m) >> 3
			if b[j+k] == '"' {
				if x&(1<<(8*k)-1)&swarHi != 0 {
					flags = strNonASCII
				}
				return j + k + 1, flags, nil
			}
		}
	}
	return scanStringFrom(b, i+1, 0)
}

// specialBytes flags (with its high bit) the lowest byte of x that is a
// quote, a backslash or a control character, and perhaps bytes above it:
// each term's lowest flag is exact, as a borrow only runs upwards from a
// byte flagged rightly.
func specialBytes(x uint64) uint64 {
	q := x ^ (swarLo * '"')
	s := x ^ (swarLo * '\\')
	return (((q - swarLo) &^ q) | ((s - swarLo) &^ s) | ((x - swarLo*0x20) &^ x)) & swarHi
}

// scanStringFrom is scanString for any string, from b[j] on, high being
// the OR of the bytes before: eight bytes are tested at a time for a
// quote, a backslash or a control character, and escapes are checked one
// by one.
func scanStringFrom(b []byte, j int, high uint64) (end int, flags uint8, err error) {
	for {
		for j+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[j:])
			m := specialBytes(x)
			if m == 0 {
				high |= x
				j += 8
				continue
			}
			k := bits.TrailingZeros64(m) >> 3
			high |= x & (1<<(8*k) - 1)
			j += k
			break
		}
		for j < len(b) {
			if c := b[j]; c == '"' || c == '\\' || c < 0x20 {
				break
			}
			high |= uint64(b[j])
			j++
		}
		if j >= len(b) {
			return j, flags, errEOF
		}
		switch c := b[j]; {
		case c == '"':
			if high&swarHi != 0 {
				flags |= strNonASCII
			}
			return j + 1, flags, nil
		case c == '\\':
			flags |= strEscaped
			if j+1 >= len(b) {
				return j, flags, errEOF
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				for k := j + 2; k < j+6; k++ {
					if k >= len(b) {
						return k, flags, errEOF
					}
					if !isHex(b[k]) {
						return k, flags, syntaxError(b, k)
					}
				}
				j += 6
			default:
				return j + 1, flags, syntaxError(b, j+1)
			}
		default:
			return j, flags, syntaxError(b, j)
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// plainString reports whether a scanned string's raw bytes are its value:
// no escapes and valid UTF-8.
func plainString(raw []byte, flags uint8) bool {
	return flags == 0 || flags == strNonASCII && utf8.Valid(raw)
}

// appendUnquoted appends the value of a scanned string's raw bytes (quotes
// excluded) as encoding/json's unquote gives it: escapes decoded, a
// surrogate pair joined, lone surrogates and invalid UTF-8 bytes replaced
// by U+FFFD.
func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch e := raw[i+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := hex4(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(raw[i+2:])); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, r)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			i += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				dst = utf8.AppendRune(dst, utf8.RuneError)
			} else {
				dst = append(dst, raw[i:i+n]...)
			}
			i += n
		}
	}
	return dst
}

// hex4 is the value of four hex digits, which scanString checked.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// scanLiteral checks that the literal lit (true, false, null) is at b[i].
func scanLiteral(b []byte, i int, lit string) (int, error) {
	if i+len(lit) <= len(b) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), nil
	}
	for k := 0; k < len(lit); k++ {
		if i+k >= len(b) {
			return i + k, errEOF
		}
		if b[i+k] != lit[k] {
			return i + k, syntaxError(b, i+k)
		}
	}
	return i + len(lit), nil
}

// scanNumber scans the number at b[i]. integer is false when it has a
// fraction or an exponent.
func scanNumber(b []byte, i int) (end int, integer bool, err error) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		return i, false, errEOF
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i++
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return i, false, syntaxError(b, i)
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		integer = false
		if i++; i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, false, syntaxError(b, i)
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		integer = false
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return i, false, syntaxError(b, i)
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	}
	return i, integer, nil
}

// parseInt is strconv.ParseInt(string(num), 10, strconv.IntSize) for a
// scanned integer: ok is false when it is out of range.
func parseInt(num []byte) (n int, ok bool) {
	neg := num[0] == '-'
	if neg {
		num = num[1:]
	}
	limit := uint64(1<<(strconv.IntSize-1) - 1)
	if neg {
		limit++
	}
	var u uint64
	for _, c := range num {
		if u > (limit-uint64(c-'0'))/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		return int(-u), true // -(1<<63) wraps to itself
	}
	return int(u), true
}

var errDepth = errors.New("exceeded max depth")

// skipValue checks the value at b[i], which is inside depth open objects
// and arrays, and returns the index after it. It keeps its own stack of
// the containers it opens, d.stack, rather than recursing.
func (d *pageDecoder) skipValue(i, depth int) (int, error) {
	b := d.buf
	stack := d.stack[:0]
	var err error
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return i, errEOF
		}
		switch c := b[i]; c {
		case '"':
			if i, _, err = scanString(b, i); err != nil {
				return i, err
			}
		case '{', '[':
			if depth+len(stack) >= maxDepth {
				return i, fmt.Errorf("%w at offset %d", errDepth, i)
			}
			if i = skipWS(b, i+1); i < len(b) && b[i] == c+2 { // '}' or ']'
				i++
				break
			}
			stack = append(stack, c)
			if c == '{' {
				if i, err = scanKey(b, i); err != nil {
					return i, err
				}
			}
			continue
		case 't':
			if i, err = scanLiteral(b, i, "true"); err != nil {
				return i, err
			}
		case 'f':
			if i, err = scanLiteral(b, i, "false"); err != nil {
				return i, err
			}
		case 'n':
			if i, err = scanLiteral(b, i, "null"); err != nil {
				return i, err
			}
		default:
			if i, _, err = scanNumber(b, i); err != nil {
				return i, err
			}
		}
		// A value ended before b[i]: close containers until the next
		// member or element.
		for {
			if len(stack) == 0 {
				d.stack = stack // keep what it grew to
				return i, nil
			}
			if i = skipWS(b, i); i >= len(b) {
				return i, errEOF
			}
			top := stack[len(stack)-1]
			if c := b[i]; c == ',' {
				i = skipWS(b, i+1)
				if top == '{' {
					if i, err = scanKey(b, i); err != nil {
						return i, err
					}
				}
				break
			} else if c != top+2 {
				return i, syntaxError(b, i)
			}
			stack = stack[:len(stack)-1]
			i++
		}
	}
}

// scanKey scans an object member's name and colon at b[i] and returns the
// index of its value.
func scanKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, syntaxError(b, i)
	}
	i, _, err := scanString(b, i)
	if err != nil {
		return i, err
	}
	if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
		return i, syntaxError(b, i)
	}
	return skipWS(b, i+1), nil
}

// kindOf names the kind of the value starting with c, without quoting
// server data; "" when no value starts with c.
func kindOf(c byte) string {
	switch {
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || '0' <= c && c <= '9':
		return "a number"
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	}
	return ""
}

// typeError reports the value at b[i] as of the wrong kind, or a syntax
// error when no value starts there.
func typeError(b []byte, i int, what, want string) error {
	if i >= len(b) || kindOf(b[i]) == "" {
		return syntaxError(b, i)
	}
	return fmt.Errorf("%s: expected %s, got %s", what, want, kindOf(b[i]))
}

// parseTime is wireTime's parsing of a timestamp string's value: RFC 3339
// with or without fractional seconds, in UTC. The usual shape,
// 2006-01-02T15:04:05[.000]Z, is parsed here exactly as time.Parse's
// RFC 3339 fast path (parseRFC3339 in time/format_rfc3339.go) parses it;
// anything else goes to time.Parse.
func parseTime(s []byte) (time.Time, bool) {
	if t, ok := parseTimeZ(s); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return time.Time{}, false
	}
	return t.UTC(), true
}

// parseTimeZ parses 2006-01-02T15:04:05Z with an optional fraction of any
// number of digits (nanoseconds from the first nine), accepting what
// parseRFC3339 accepts of this shape. It builds the time from its Unix
// seconds: time.Unix(sec, nsec).UTC() is the very Time (wall, ext and
// location) that time.Date(..., time.UTC) and time.Parse(...).UTC() give.
func parseTimeZ(s []byte) (time.Time, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[len(s)-1] != 'Z' ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	y1, ok1 := two(s[0:2])
	y2, ok2 := two(s[2:4])
	month, ok3 := two(s[5:7])
	day, ok4 := two(s[8:10])
	hour, ok5 := two(s[11:13])
	minute, ok6 := two(s[14:16])
	sec, ok7 := two(s[17:19])
	year := y1*100 + y2
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := s[19 : len(s)-1]; len(frac) > 0 {
		if len(frac) < 2 || frac[0] != '.' {
			return time.Time{}, false
		}
		frac = frac[1:]
		for _, c := range frac {
			if c < '0' || c > '9' {
				return time.Time{}, false
			}
		}
		n := min(len(frac), 9)
		for _, c := range frac[:n] {
			nsec = nsec*10 + int(c-'0')
		}
		for ; n < 9; n++ {
			nsec *= 10
		}
	}
	unix := daysSinceEpoch(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
	return time.Unix(unix, int64(nsec)).UTC(), true
}

// two is the value of two decimal digits.
func two(s []byte) (int, bool) {
	a, b := s[0]-'0', s[1]-'0'
	return int(a)*10 + int(b), a <= 9 && b <= 9
}

// daysSinceEpoch is the number of days from 1970-01-01 to a valid date of
// the proleptic Gregorian calendar (days_from_civil of
// http://howardhinnant.github.io/date_algorithms.html).
func daysSinceEpoch(year, month, day int) int64 {
	y := int64(year)
	if month <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	m := int64(month)
	if m > 2 {
		m -= 3
	} else {
		m += 9
	}
	doy := (153*m+2)/5 + int64(day) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// daysIn is the number of days of month in year (proleptic Gregorian).
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
