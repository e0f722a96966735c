package config

// Secret holds a value read from the environment. It never prints: in logs,
// %v, JSON and YAML it reads "<secret>".
type Secret string

const redacted = "<secret>"

// String returns "<secret>"; use Reveal for the value.
func (Secret) String() string { return redacted }

// GoString keeps %#v from printing the value.
func (Secret) GoString() string { return redacted }

// MarshalJSON writes "<secret>".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalYAML writes "<secret>".
func (Secret) MarshalYAML() (any, error) { return redacted, nil }

// Reveal returns the secret's value, for the one place that needs it.
func (s Secret) Reveal() string { return string(s) }
