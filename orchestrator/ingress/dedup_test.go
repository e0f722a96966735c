package ingress

import (
	"fmt"
	"testing"

	"github.com/batonhq/baton/messenger"
)

// Dedup marks outlive a restart and an upgrade: a receipt's key is the
// one earlier versions wrote with fmt, or Meta's redelivery of it after
// an upgrade would be routed again.
func TestReceiptKeysAreTheEarlierOnes(t *testing.T) {
	for _, w := range []int64{0, 1, 1795557600123, -5} {
		sender := &messenger.Party{ID: "7123456789012345"}
		for kind, ev := range map[string]*messenger.Event{
			"rd": {Sender: sender, Read: &messenger.Read{Watermark: w}},
			"dl": {Sender: sender, Delivery: &messenger.Delivery{Watermark: w}},
		} {
			got, ok := eventKey("100200300400500", ev)
			if want := fmt.Sprintf("%s:%s:%s:%d", kind, "100200300400500", ev.UserID(), w); !ok || got != want {
				t.Errorf("%s key %q, %v; want %q", kind, got, ok, want)
			}
		}
	}
}
