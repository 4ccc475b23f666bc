package client

import (
	"fmt"
	"strings"
)

// ParseLinkHeader parses an RFC 8288 Link header into a map from relation
// type (lower case) to URL, as written between the angle brackets. It is
// tolerant of spacing, quoted or bare parameter values, parameter order,
// empty list elements and several relation types in one rel ("next last");
// the first URL given for a relation wins. Links without rel are ignored.
// Anything it cannot read is an error, which quotes no part of the header,
// and so is a header of more than 16 links, or a link of more than 16
// relations (Buildkite sends four links of one relation each).
// An empty header yields an empty map.
func ParseLinkHeader(h string) (map[string]string, error) {
	links := make(map[string]string)
	p := linkParser{s: h}
	for n := 0; ; {
		p.skipSpace()
		if p.eof() {
			return links, nil
		}
		if p.peek() == ',' { // empty list element
			p.i++
			continue
		}
		target, rels, err := p.linkValue()
		if err != nil {
			return nil, err
		}
		if n++; n > maxLinks || len(rels) > maxLinks {
			return nil, fmt.Errorf("link header: more than %d links or relations", maxLinks)
		}
		for _, rel := range rels {
			if _, dup := links[rel]; !dup {
				links[rel] = target
			}
		}
	}
}

type linkParser struct {
	s string
	i int
}

func (p *linkParser) eof() bool  { return p.i >= len(p.s) }
func (p *linkParser) peek() byte { return p.s[p.i] }

func (p *linkParser) skipSpace() {
	for !p.eof() && (p.peek() == ' ' || p.peek() == '\t') {
		p.i++
	}
}

func (p *linkParser) errorf(format string, args ...any) error {
	return fmt.Errorf("link header: "+format+" at byte %d", append(args, p.i)...)
}

// linkValue reads `<URL> *(; param)` up to the next top-level comma.
func (p *linkParser) linkValue() (target string, rels []string, err error) {
	if p.peek() != '<' {
		return "", nil, p.errorf("expected '<'")
	}
	end := strings.IndexByte(p.s[p.i+1:], '>')
	if end < 0 {
		return "", nil, p.errorf("unterminated '<'")
	}
	target = strings.TrimSpace(p.s[p.i+1 : p.i+1+end])
	if target == "" {
		return "", nil, p.errorf("empty URL")
	}
	p.i += end + 2
	relSeen := false
	for {
		p.skipSpace()
		if p.eof() {
			return target, rels, nil
		}
		switch p.peek() {
		case ',':
			p.i++
			return target, rels, nil
		case ';':
			p.i++
		default:
			return "", nil, p.errorf("expected ';' or ','")
		}
		name, value, ok, err := p.param()
		if err != nil {
			return "", nil, err
		}
		// RFC 8288: occurrences of rel after the first are ignored.
		if ok && strings.EqualFold(name, "rel") && !relSeen {
			relSeen = true
			rels = strings.Fields(strings.ToLower(value))
		}
	}
}

// param reads `name [= value]` after a ';'; ok is false for an empty
// parameter, as in "<u>;; rel=next".
func (p *linkParser) param() (name, value string, ok bool, err error) {
	p.skipSpace()
	if p.eof() || p.peek() == ',' || p.peek() == ';' {
		return "", "", false, nil
	}
	if name = p.token(); name == "" {
		return "", "", false, p.errorf("bad parameter name")
	}
	p.skipSpace()
	if !p.eof() && p.peek() == '=' {
		p.i++
		p.skipSpace()
		if value, err = p.value(); err != nil {
			return "", "", false, err
		}
	}
	return name, value, true, nil
}

// token reads a bare word: anything up to white space or a delimiter.
func (p *linkParser) token() string {
	start := p.i
	for !p.eof() {
		switch p.peek() {
		case ' ', '\t', ';', ',', '=', '"', '<', '>':
			return p.s[start:p.i]
		}
		p.i++
	}
	return p.s[start:p.i]
}

// value reads a quoted string (with backslash escapes) or a bare token.
func (p *linkParser) value() (string, error) {
	if p.eof() || p.peek() != '"' {
		return p.token(), nil
	}
	p.i++
	var b strings.Builder
	for !p.eof() {
		c := p.peek()
		p.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.eof() {
				return "", p.errorf("unterminated quoted string")
			}
			b.WriteByte(p.peek())
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errorf("unterminated quoted string")
}
