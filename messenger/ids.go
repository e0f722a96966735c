package messenger

// MaxIDLength bounds the ids Baton accepts from outside: Meta's page ids,
// PSIDs, Instagram-scoped ids and app ids are decimal numbers of at most
// 20 digits (they fit in 64 bits).
const MaxIDLength = 20

// ValidID reports whether s looks like an id Meta makes: 1 to MaxIDLength
// decimal digits. Anything else (letters, a NUL, a path separator) must
// never reach a store key, where it could reach another thread's records
// through a prefix scan.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
