package policy

import "strings"

// This file parses targeted cache-control fields (RFC 9213), which are
// Structured Field Dictionaries (RFC 8941 §3.2). The parser validates the
// whole field before any of it is used: an invalid field is ignored whole.

// sfKind is the type of a parsed bare item (RFC 8941 §3.3).
type sfKind uint8

const (
	sfInteger sfKind = iota + 1
	sfDecimal
	sfString
	sfToken
	sfBytes
	sfBoolean
	sfInnerList
)

// sfValue is a dictionary member value. str is the raw content of a String
// (escapes left in place: field names never need them).
type sfValue struct {
	kind sfKind
	num  int64
	str  string
	b    bool
}

// parseTargeted parses a targeted field into directives. ok is false when
// the field is empty or invalid (RFC 9213 §2.2: then it is as if absent).
func parseTargeted(vs []string) (d directives, ok bool) {
	d = newDirectives()
	ok = parseDict(joinLines(vs), func(key string, v sfValue) {
		d.applyTargeted(key, v)
	})
	return d, ok
}

// targetedFieldNames is fieldNames for a targeted field, where the qualified
// private and no-cache forms carry their field names in a String.
func targetedFieldNames(vs []string, directive string, fn func(string)) {
	var list string
	parseDict(joinLines(vs), func(key string, v sfValue) {
		if key == directive {
			list = ""
			if v.kind == sfString {
				list = v.str // the last member of a key wins (RFC 8941 §4.2.2)
			}
		}
	})
	splitList(list, fn)
}

// joinLines combines field lines as RFC 8941 §4.2 requires. One line, the
// usual case, costs nothing.
func joinLines(vs []string) string {
	if len(vs) == 1 {
		return vs[0]
	}
	return strings.Join(vs, ", ")
}

// applyTargeted maps one dictionary member onto directives. Members whose
// value has the wrong type are not consumed (RFC 9213 §2.2); a later member
// with the same key replaces an earlier one (RFC 8941 §4.2.2).
func (d *directives) applyTargeted(key string, v sfValue) {
	var flag uint16
	switch key {
	case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
		if v.kind != sfInteger || v.num < 0 {
			return
		}
		n := min(v.num, maxDelta)
		switch key {
		case "max-age":
			d.maxAge = n
		case "s-maxage":
			d.sMaxAge = n
		case "stale-while-revalidate":
			d.swr = n
		default:
			d.sie = n
		}
		return
	case "private", "no-cache":
		plain, fields := ccPrivate, ccPrivateFields
		if key == "no-cache" {
			plain, fields = ccNoCache, ccNoCacheFields
		}
		d.flags &^= plain | fields
		switch {
		case v.kind == sfBoolean && v.b:
			d.flags |= plain
		case v.kind == sfString:
			d.flags |= fields
		}
		return
	case "public":
		flag = ccPublic
	case "no-store":
		flag = ccNoStore
	case "must-revalidate":
		flag = ccMustRevalidate
	case "proxy-revalidate":
		flag = ccProxyRevalidate
	case "must-understand":
		flag = ccMustUnderstand
	case "immutable":
		flag = ccImmutable
	default:
		return // unknown directives are ignored (RFC 9111 §5.2.3)
	}
	if v.kind != sfBoolean {
		return
	}
	if v.b {
		d.flags |= flag
	} else {
		d.flags &^= flag
	}
}

// sfParser is a cursor over a field value.
type sfParser struct {
	s string
	i int
}

func (p *sfParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *sfParser) skipSP() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

func (p *sfParser) skipOWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// parseDict parses a Dictionary (RFC 8941 §4.2.2), calling fn for each
// member in order. It reports false for an empty or invalid field; fn may
// have been called for the members before the error.
func parseDict(s string, fn func(key string, v sfValue)) bool {
	p := sfParser{s: strings.Trim(s, " \t")}
	if p.s == "" {
		return false
	}
	for {
		key, ok := p.key()
		if !ok {
			return false
		}
		v := sfValue{kind: sfBoolean, b: true}
		if p.peek() == '=' {
			p.i++
			if v, ok = p.member(); !ok {
				return false
			}
		} else if !p.params(nil) {
			return false
		}
		fn(key, v)
		if more, ok := p.next(); !more {
			return ok
		}
	}
}

// next reads what follows a member of a List or a Dictionary (RFC 8941
// §4.2.1, §4.2.2): more is true when a comma announces another member; ok
// is false for anything else than that or the end of the field, a trailing
// comma included.
func (p *sfParser) next() (more, ok bool) {
	p.skipOWS()
	if p.i == len(p.s) {
		return false, true
	}
	if p.peek() != ',' {
		return false, false
	}
	p.i++
	p.skipOWS()
	return p.i < len(p.s), p.i < len(p.s)
}

// member parses an Item or an Inner List, with its parameters.
func (p *sfParser) member() (sfValue, bool) {
	if p.peek() != '(' {
		v, ok := p.bareItem()
		return v, ok && p.params(nil)
	}
	p.i++
	for {
		p.skipSP()
		if p.peek() == ')' {
			p.i++
			return sfValue{kind: sfInnerList}, p.params(nil)
		}
		if _, ok := p.bareItem(); !ok || !p.params(nil) {
			return sfValue{}, false
		}
		if c := p.peek(); c != ' ' && c != ')' {
			return sfValue{}, false
		}
	}
}

// params parses parameters, calling fn (when not nil) for each in order; a
// parameter without a value is the Boolean true. RFC 9213 §2.2 ignores them.
func (p *sfParser) params(fn func(key string, v sfValue)) bool {
	for p.peek() == ';' {
		p.i++
		p.skipSP()
		key, ok := p.key()
		if !ok {
			return false
		}
		v := sfValue{kind: sfBoolean, b: true}
		if p.peek() == '=' {
			p.i++
			if v, ok = p.bareItem(); !ok {
				return false
			}
		}
		if fn != nil {
			fn(key, v)
		}
	}
	return true
}

// key parses a key: lcalpha or "*", then lcalpha, digits, "_-.*".
func (p *sfParser) key() (string, bool) {
	start := p.i
	if c := p.peek(); !(c >= 'a' && c <= 'z') && c != '*' {
		return "", false
	}
	for p.i < len(p.s) {
		c := p.s[p.i]
		if !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && strings.IndexByte("_-.*", c) < 0 {
			break
		}
		p.i++
	}
	return p.s[start:p.i], true
}

func (p *sfParser) bareItem() (sfValue, bool) {
	c := p.peek()
	switch {
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == '"':
		return p.str()
	case c == '*' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		start := p.i
		p.i++
		for p.i < len(p.s) && (isTchar(p.s[p.i]) || p.s[p.i] == ':' || p.s[p.i] == '/') {
			p.i++
		}
		return sfValue{kind: sfToken, str: p.s[start:p.i]}, true
	case c == ':':
		p.i++
		start := p.i
		for p.i < len(p.s) && p.s[p.i] != ':' {
			c := p.s[p.i]
			if !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '+' && c != '/' && c != '=' {
				return sfValue{}, false
			}
			p.i++
		}
		if p.i == len(p.s) {
			return sfValue{}, false
		}
		p.i++
		return sfValue{kind: sfBytes, str: p.s[start : p.i-1]}, true
	case c == '?':
		p.i++
		switch p.peek() {
		case '0', '1':
			b := p.peek() == '1'
			p.i++
			return sfValue{kind: sfBoolean, b: b}, true
		}
	}
	return sfValue{}, false
}

// number parses an Integer (at most 15 digits) or a Decimal (at most 12
// integer and 3 fractional digits), RFC 8941 §4.2.4.
func (p *sfParser) number() (sfValue, bool) {
	neg := p.peek() == '-'
	if neg {
		p.i++
	}
	var n int64
	digits, frac, dot := 0, 0, false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c >= '0' && c <= '9':
			if dot {
				frac++
			} else {
				digits++
				n = n*10 + int64(c-'0')
			}
		case c == '.' && !dot && digits > 0:
			dot = true
		default:
			goto done
		}
		p.i++
		if (!dot && digits > 15) || (dot && (digits > 12 || frac > 3)) {
			return sfValue{}, false
		}
	}
done:
	if digits == 0 || (dot && frac == 0) {
		return sfValue{}, false
	}
	if neg {
		n = -n
	}
	if dot {
		return sfValue{kind: sfDecimal, num: n}, true
	}
	return sfValue{kind: sfInteger, num: n}, true
}

// str parses a String: printable ASCII, with \" and \\ the only escapes.
func (p *sfParser) str() (sfValue, bool) {
	p.i++
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '\\':
			p.i++
			if n := p.peek(); n != '"' && n != '\\' {
				return sfValue{}, false
			}
		case c == '"':
			p.i++
			return sfValue{kind: sfString, str: p.s[start : p.i-1]}, true
		case c < 0x20 || c > 0x7e:
			return sfValue{}, false
		}
		p.i++
	}
	return sfValue{}, false
}
