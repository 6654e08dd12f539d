package rules

// elem is one element of a path pattern: a byte to match, or a star.
type elem struct {
	kind byte // 0: the byte c; '*': any run without '/'; '**' is kind 'a': any run
	c    byte
}

func parsePattern(p string) []elem {
	var out []elem
	for i := 0; i < len(p); i++ {
		switch {
		case p[i] == '*' && i+1 < len(p) && p[i+1] == '*':
			out = append(out, elem{kind: 'a'})
			for i+1 < len(p) && p[i+1] == '*' {
				i++ // *** is **
			}
		case p[i] == '*':
			out = append(out, elem{kind: '*'})
		default:
			out = append(out, elem{c: p[i]})
		}
	}
	return out
}

// match reports whether s matches the pattern. It follows every way the
// stars can match at once (an NFA over the pattern's positions), so a
// hostile path costs len(pattern) × len(path) steps, never more.
func match(pat []elem, s string) bool {
	var buf [2][64]bool
	cur, next := buf[0][:0], buf[1][:0]
	if len(pat)+1 > len(buf[0]) {
		cur, next = make([]bool, 0, len(pat)+1), make([]bool, 0, len(pat)+1)
	}
	cur, next = cur[:len(pat)+1], next[:len(pat)+1]
	clear(cur)
	cur[0] = true
	closeStars(pat, cur)
	for i := 0; i < len(s); i++ {
		clear(next)
		any := false
		for st, on := range cur[:len(pat)] {
			if !on {
				continue
			}
			switch e := pat[st]; {
			case e.kind == 'a', e.kind == '*' && s[i] != '/':
				next[st], any = true, true
			case e.kind == 0 && e.c == s[i]:
				next[st+1], any = true, true
			}
		}
		if !any {
			return false
		}
		closeStars(pat, next)
		cur, next = next, cur
	}
	return cur[len(pat)]
}

// closeStars adds the states a star can reach by matching nothing.
func closeStars(pat []elem, states []bool) {
	for st := range pat {
		if states[st] && pat[st].kind != 0 {
			states[st+1] = true
		}
	}
}
