package rules

import (
	"testing"
	"time"
)

func TestMatcher(t *testing.T) {
	m, err := NewMatcher([]string{"human", "real person", "agent"}, []string{`(?i)\btalk to (someone|somebody)\b`}, []string{"TALK_TO_HUMAN"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		text, payload string
		want          string
	}{
		{"I want a human", "", "word human"},
		{"HUMAN!", "", "word human"},
		{"can I get a real   person please", "", "word real   person"},
		{"that is humane", "", ""},
		{"inhuman", "", ""},
		{"agents", "", ""},
		{"Let me talk to someone", "", `pattern (?i)\btalk to (someone|somebody)\b`},
		{"", "TALK_TO_HUMAN", "payload TALK_TO_HUMAN"},
		{"hello", "OTHER", ""},
		{"mensch human", "", "word human"},
		{"a human—now", "", "word human"},
		{"éhuman", "", ""},
	} {
		why, ok := m.Match(c.text, c.payload)
		if ok != (c.want != "") || why != c.want {
			t.Errorf("Match(%q, %q) = %q %v, want %q", c.text, c.payload, why, ok, c.want)
		}
	}
	if _, err := NewMatcher(nil, []string{"("}, nil); err == nil {
		t.Error("bad pattern accepted")
	}
	if _, err := NewMatcher([]string{" "}, nil, nil); err == nil {
		t.Error("empty word accepted")
	}
}

func TestWeek(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	w, err := ParseWeek(paris, map[string]string{"mon-fri": "09:00-12:30, 13:30-18:00", "sat": "10:00-14:00", "sun": "closed"})
	if err != nil {
		t.Fatal(err)
	}
	// 2026-11-23 is a Monday; Paris is UTC+1 in November, UTC+2 in July.
	for _, c := range []struct {
		at   string
		open bool
	}{
		{"2026-11-23T08:00:00Z", true},  // 09:00 Paris
		{"2026-11-23T07:59:00Z", false}, // 08:59
		{"2026-11-23T11:45:00Z", false}, // 12:45, lunch
		{"2026-11-23T16:59:00Z", true},  // 17:59
		{"2026-11-23T17:00:00Z", false}, // 18:00
		{"2026-11-28T12:00:00Z", true},  // Saturday 13:00
		{"2026-11-29T12:00:00Z", false}, // Sunday
		{"2026-07-06T07:30:00Z", true},  // Monday 09:30 in summer time
		{"2026-07-06T16:30:00Z", false}, // 18:30 summer time
		{"2026-11-27T23:30:00Z", false}, // Saturday 00:30 in Paris, Friday in UTC
	} {
		at, _ := time.Parse(time.RFC3339, c.at)
		if got := w.Open(at); got != c.open {
			t.Errorf("Open(%s) = %v, want %v", c.at, got, c.open)
		}
	}
	for _, bad := range []map[string]string{
		{"mon": "9-17"},
		{"mon": "18:00-09:00"},
		{"funday": "09:00-17:00"},
		{"mon-fri": "09:00-17:00", "fri": "10:00-11:00"},
		{"mon": "09:00-24:30"},
	} {
		if _, err := ParseWeek(time.UTC, bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	all, _ := ParseWeek(time.UTC, map[string]string{"sat-tue": "00:00-24:00"})
	if !all.Open(time.Date(2026, 11, 29, 23, 59, 0, 0, time.UTC)) || all.Open(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)) {
		t.Error("wrapping day range")
	}
}
