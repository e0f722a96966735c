package messenger

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// MarshalLikeMeta encodes v as Meta encodes webhook bodies: compact JSON,
// every non-ASCII character as a \uXXXX escape with lowercase hex (surrogate
// pairs beyond the Basic Multilingual Plane) and "/" as "\/". Meta signs
// these exact bytes, so a fake or a forwarder that wants its signatures to
// match what receivers compute must send them unchanged.
func MarshalLikeMeta(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // Meta does not escape <, > and &
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return EscapeLikeMeta(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// EscapeLikeMeta rewrites compact, valid JSON into Meta's escaping. Outside
// strings JSON has neither "/" nor non-ASCII bytes, and escapes already in
// the input are kept, so a byte-level pass is exact.
func EscapeLikeMeta(js []byte) []byte {
	out := make([]byte, 0, len(js)+len(js)/8)
	const hexDigits = "0123456789abcdef"
	esc := func(r rune) {
		out = append(out, '\\', 'u',
			hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	for i := 0; i < len(js); {
		c := js[i]
		switch {
		case c == '\\' && i+1 < len(js):
			// An escape already in the input (raw events forwarded from
			// Meta carry \/ and \uXXXX): keep it as it is.
			out = append(out, c, js[i+1])
			i += 2
		case c == '/':
			out = append(out, '\\', '/')
			i++
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(js[i:])
			i += size
			if r >= 0x10000 {
				r -= 0x10000
				esc(0xd800 + (r>>10)&0x3ff)
				esc(0xdc00 + r&0x3ff)
			} else {
				esc(r)
			}
		}
	}
	return out
}
