package apierr_test

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/statemachine"
	"github.com/batonhq/baton/store"
)

// A thread of a shard this replica does not hold is 421 with the shard
// in a header, however it is wrapped, and nothing else is: the cluster's
// forwarding relies on both.
func TestNotOwned(t *testing.T) {
	notOwned := &store.NotOwnedError{Key: store.ThreadKey{Page: "100", PSID: "200"}, Shard: 17}
	for _, c := range []struct {
		name   string
		err    error
		code   apierr.Code
		status int
		shard  string
	}{
		{"bare", notOwned, apierr.NotOwner, http.StatusMisdirectedRequest, "17"},
		{"wrapped", fmt.Errorf("pass thread 100/200: %w", notOwned), apierr.NotOwner, http.StatusMisdirectedRequest, "17"},
		{"joined with a refusal", errors.Join(statemachine.ErrRefused, notOwned), apierr.NotOwner, http.StatusMisdirectedRequest, "17"},
		{"shard zero", &store.NotOwnedError{Shard: 0}, apierr.NotOwner, http.StatusMisdirectedRequest, "0"},
		{"fenced, not told whose", store.ErrFenced, apierr.Internal, http.StatusInternalServerError, ""},
		{"a caller's mistake", apierr.Errorf(apierr.Invalid, "no"), apierr.Invalid, http.StatusBadRequest, ""},
		{"owner changing", apierr.Errorf(apierr.OwnerChanging, "retry"), apierr.OwnerChanging, http.StatusServiceUnavailable, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := apierr.CodeOf(c.err); got != c.code {
				t.Fatalf("CodeOf = %q, want %q", got, c.code)
			}
			if got := apierr.Status(apierr.CodeOf(c.err)); got != c.status {
				t.Fatalf("status %d, want %d", got, c.status)
			}
			h := http.Header{}
			apierr.SetHeaders(h, c.err)
			if got := h.Get(apierr.ShardHeader); got != c.shard {
				t.Fatalf("%s = %q, want %q", apierr.ShardHeader, got, c.shard)
			}
			if _, ok := apierr.Shard(c.err); ok != (c.shard != "") {
				t.Fatalf("Shard ok = %v", ok)
			}
		})
	}
	if !errors.Is(notOwned, store.ErrFenced) {
		t.Fatal("a NotOwnedError no longer wraps ErrFenced")
	}
	if apierr.Retryable(notOwned) || !apierr.Retryable(apierr.Errorf(apierr.OwnerChanging, "x")) {
		t.Fatal("retryable: not_owner must not be (nothing forwarded it), owner_changing must")
	}
}
