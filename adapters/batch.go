package adapters

// Outcome is one delivery's part of a batch: its result, or why it failed
// (judged like a single delivery's error: Retryable, RetryAfter).
type Outcome struct {
	Result Result
	Err    error
}

// FailAll is the outcome of a batch that failed as a whole: every
// delivery in it failed with err.
func FailAll(n int, err error) []Outcome {
	out := make([]Outcome, n)
	for i := range out {
		out[i].Err = err
	}
	return out
}
