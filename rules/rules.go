// Package rules holds the pure parts of Baton's handover rules: matching a
// person's message against an escalation rule, and business hours. It has
// no I/O and no clock; the orchestrator decides when to ask.
package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Matcher says whether a person's message or payload asks for a rule.
type Matcher struct {
	words    *regexp.Regexp
	patterns []*regexp.Regexp
	payloads []string
}

// NewMatcher compiles words (whole words or phrases, case-insensitive),
// patterns (Go regular expressions) and payloads (quick-reply or postback
// payloads, exact). A pattern that does not compile is an error naming it.
func NewMatcher(words, patterns, payloads []string) (*Matcher, error) {
	m := &Matcher{payloads: payloads}
	var quoted []string
	for _, w := range words {
		w = strings.TrimSpace(w)
		if w == "" {
			return nil, errors.New("an empty word matches every message")
		}
		quoted = append(quoted, strings.Join(strings.Fields(regexp.QuoteMeta(w)), `\s+`))
	}
	if len(quoted) > 0 {
		// Word boundaries that know letters beyond ASCII: "human" matches
		// "a human!" but not "humane" nor "inhuman".
		m.words = regexp.MustCompile(`(?i)(?:^|[^\pL\pN_])(` + strings.Join(quoted, "|") + `)(?:$|[^\pL\pN_])`)
	}
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("pattern %d: %w", i, err)
		}
		m.patterns = append(m.patterns, re)
	}
	return m, nil
}

// Match reports whether text or payload asks for the rule, and says what
// matched (for the history and the metadata).
func (m *Matcher) Match(text, payload string) (why string, ok bool) {
	if payload != "" && slices.Contains(m.payloads, payload) {
		return "payload " + payload, true
	}
	if text == "" {
		return "", false
	}
	if m.words != nil {
		if sub := m.words.FindStringSubmatch(text); sub != nil {
			return "word " + strings.ToLower(sub[1]), true
		}
	}
	for _, re := range m.patterns {
		if re.MatchString(text) {
			return "pattern " + re.String(), true
		}
	}
	return "", false
}
