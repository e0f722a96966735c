package messenger

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ID is a Facebook object id (page, PSID, app). Meta's own examples send the
// same field as a JSON string in one place and a bare number in another
// (REFERENCE §2.2), so ID decodes from either, keeps the digits exactly (a
// float64 would round 15-digit app ids) and always encodes as a string.
// The empty ID stands for JSON null: `previous_owner_app_id: null` means the
// thread was idle.
type ID string

// UnmarshalJSON accepts "123", 123 and null.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return fmt.Errorf("messenger: empty id")
	case bytes.Equal(b, []byte("null")):
		*id = ""
		return nil
	case b[0] == '"' && len(b) >= 2 && bytes.IndexByte(b, '\\') < 0:
		*id = ID(b[1 : len(b)-1]) // no escapes: the bytes are the id
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("messenger: id: %w", err)
		}
		*id = ID(s)
		return nil
	default:
		// A number: keep its literal text; reject fractions and exponents,
		// which no id has.
		for _, c := range b {
			if (c < '0' || c > '9') && c != '-' {
				return fmt.Errorf("messenger: id %s is not an integer", b)
			}
		}
		*id = ID(b)
		return nil
	}
}

// MarshalJSON writes the id as a JSON string, or null when empty.
func (id ID) MarshalJSON() ([]byte, error) {
	if id == "" {
		return []byte("null"), nil
	}
	return json.Marshal(string(id))
}

// String returns the id's digits.
func (id ID) String() string { return string(id) }
