package rules

import (
	"fmt"
	"sort"
	"strings"
	"time"
	// Time zones must load on machines without a zoneinfo database
	// (distroless and scratch images).
	_ "time/tzdata"
)

// Week is opening hours in a time zone: for each weekday, the spans of the
// day when people are there. Spans are minutes since midnight, local time.
type Week struct {
	loc  *time.Location
	days [7][]span // by time.Weekday
}

type span struct{ from, to int } // [from, to) in minutes

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWeek reads opening hours: keys are days ("mon") or ranges of days
// ("mon-fri", "sat-sun"), values one or more spans "09:00-12:30, 13:30-18:00"
// ("24:00" ends a day; "closed" or "" is a closed day). Days not named are
// closed. The error names the key at fault.
func ParseWeek(loc *time.Location, open map[string]string) (*Week, error) {
	w := &Week{loc: loc}
	keys := make([]string, 0, len(open))
	for k := range open {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var seen [7]string
	for _, k := range keys {
		days, err := parseDays(k)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		spans, err := parseSpans(open[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		for _, d := range days {
			if seen[d] != "" {
				return nil, fmt.Errorf("%s: %s is also in %s", k, d, seen[d])
			}
			seen[d] = k
			w.days[d] = spans
		}
	}
	return w, nil
}

func parseDays(k string) ([]time.Weekday, error) {
	from, to, isRange := strings.Cut(strings.ToLower(strings.TrimSpace(k)), "-")
	a, ok := dayNames[from]
	if !ok {
		return nil, fmt.Errorf("%q is not a day (mon, tue, wed, thu, fri, sat, sun)", from)
	}
	if !isRange {
		return []time.Weekday{a}, nil
	}
	b, ok := dayNames[to]
	if !ok {
		return nil, fmt.Errorf("%q is not a day (mon, tue, wed, thu, fri, sat, sun)", to)
	}
	var out []time.Weekday
	for d := a; ; d = (d + 1) % 7 {
		out = append(out, d)
		if d == b {
			return out, nil
		}
	}
}

func parseSpans(v string) ([]span, error) {
	v = strings.TrimSpace(v)
	if v == "" || strings.EqualFold(v, "closed") {
		return nil, nil
	}
	var out []span
	for _, part := range strings.Split(v, ",") {
		a, b, ok := strings.Cut(strings.TrimSpace(part), "-")
		if !ok {
			return nil, fmt.Errorf("%q is not a span such as 09:00-18:00", part)
		}
		from, err := parseClock(a)
		if err != nil {
			return nil, err
		}
		to, err := parseClock(b)
		if err != nil {
			return nil, err
		}
		if to <= from {
			return nil, fmt.Errorf("%q ends before it starts (a span cannot cross midnight: split it over two days)", part)
		}
		out = append(out, span{from, to})
	}
	return out, nil
}

func parseClock(s string) (int, error) {
	s = strings.TrimSpace(s)
	var h, m int
	if n, err := fmt.Sscanf(s, "%d:%d", &h, &m); n != 2 || err != nil || len(s) != 5 || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, fmt.Errorf("%q is not a time of day such as 09:00", s)
	}
	return h*60 + m, nil
}

// Open reports whether t falls inside the opening hours, in the week's
// time zone (so daylight saving time moves nothing by an hour).
func (w *Week) Open(t time.Time) bool {
	t = t.In(w.loc)
	m := t.Hour()*60 + t.Minute()
	for _, s := range w.days[t.Weekday()] {
		if m >= s.from && m < s.to {
			return true
		}
	}
	return false
}

// Location is the week's time zone.
func (w *Week) Location() *time.Location { return w.loc }
