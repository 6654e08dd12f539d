package policy

import (
	"net/http"
	"strings"
	"time"
)

// parseHTTPDate parses an HTTP-date in any of the three formats a recipient
// must accept (RFC 9110 §5.6.7): IMF-fixdate, RFC 850 and asctime. Day
// names, month names and "GMT" are read regardless of letter case, as the
// RFC asks recipients to be robust (sloppy origins send "THU" or "gmt");
// everything else must be exact. It does not allocate (time.Parse does, for
// the zone). ref is the time the message was received; it places RFC 850's
// two-digit years: a year more than 50 years after ref is read as the most
// recent past year with those digits.
func parseHTTPDate(s string, ref time.Time) (time.Time, bool) {
	s = strings.Trim(s, " \t")
	switch {
	case len(s) == 29 && s[3] == ',': // Sun, 06 Nov 1994 08:49:37 GMT
		if !isDayName(s[:3], false) || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' || !isGMT(s[25:]) {
			return time.Time{}, false
		}
		return buildDate(num(s[12:16]), s[8:11], num(s[5:7]), s[17:25])
	case len(s) == 24 && s[3] == ' ': // Sun Nov  6 08:49:37 1994
		if !isDayName(s[:3], false) || s[7] != ' ' || s[10] != ' ' || s[19] != ' ' {
			return time.Time{}, false
		}
		day := s[8:10]
		if day[0] == ' ' {
			day = day[1:]
		}
		return buildDate(num(s[20:24]), s[4:7], num(day), s[11:19])
	}
	// Sunday, 06-Nov-94 08:49:37 GMT
	comma := strings.IndexByte(s, ',')
	if comma < 0 || !isDayName(s[:comma], true) {
		return time.Time{}, false
	}
	r := s[comma:]
	if len(r) != 24 || r[1] != ' ' || r[4] != '-' || r[8] != '-' || r[11] != ' ' || !isGMT(r[20:]) {
		return time.Time{}, false
	}
	yy := num(r[9:11])
	if yy < 0 {
		return time.Time{}, false
	}
	year := 1900 + yy
	if ref.IsZero() {
		if yy < 70 {
			year += 100
		}
	} else {
		limit := ref.Year() + 50
		year = limit - ((limit-yy)%100+100)%100
	}
	return buildDate(year, r[5:8], num(r[2:4]), r[12:20])
}

var dayNames = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}

func isDayName(s string, long bool) bool {
	for _, d := range dayNames {
		if (long && strings.EqualFold(s, d)) || (!long && strings.EqualFold(s, d[:3])) {
			return true
		}
	}
	return false
}

// isGMT reports whether s is " GMT", in any letter case.
func isGMT(s string) bool {
	return len(s) == 4 && s[0] == ' ' && strings.EqualFold(s[1:], "GMT")
}

var monthNames = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// monthOf returns the month named by s in any letter case, 0 when s names none.
func monthOf(s string) time.Month {
	for i, m := range monthNames {
		if strings.EqualFold(s, m) {
			return time.Month(i + 1)
		}
	}
	return 0
}

// buildDate validates the parts and builds a UTC time. Field values that
// time.Date would silently normalise (Feb 30, 25:00) are rejected.
func buildDate(year int, month string, day int, clock string) (time.Time, bool) {
	mon := monthOf(month)
	if year < 0 || mon == 0 || len(clock) != 8 || clock[2] != ':' || clock[5] != ':' {
		return time.Time{}, false
	}
	hh, mm, ss := num(clock[0:2]), num(clock[3:5]), num(clock[6:8])
	if hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60 || day < 1 {
		return time.Time{}, false
	}
	if day > time.Date(year, mon+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, false
	}
	return time.Date(year, mon, day, hh, mm, ss, 0, time.UTC), true
}

// num parses a short run of ASCII digits; -1 when s is not one.
func num(s string) int {
	if s == "" {
		return -1
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// headerDate parses the first line of a date field of h.
func headerDate(h http.Header, name string, ref time.Time) (time.Time, bool) {
	vs := h[name]
	if len(vs) == 0 {
		return time.Time{}, false
	}
	return parseHTTPDate(vs[0], ref)
}

// parseAge reads an Age field (RFC 9111 §5.1): the first member of a list
// is used and the rest discarded; anything but a non-negative integer is
// ignored (ok false). Large values saturate like delta-seconds.
func parseAge(vs []string) (time.Duration, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	first, _, _ := strings.Cut(vs[0], ",")
	n, ok := parseDelta(strings.Trim(first, " \t"))
	return time.Duration(n) * time.Second, ok
}
