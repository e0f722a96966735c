package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/batonhq/baton/orchestrator/api"
	"github.com/batonhq/baton/orchestrator/apierr"
	"github.com/batonhq/baton/store"
)

// notMine is a dispatcher of a replica that holds none of the shards.
type notMine struct{}

func (notMine) Retry(context.Context, uint64) (store.Delivery, error) {
	return store.Delivery{}, &store.NotOwnedError{Key: store.ThreadKey{Page: "1", PSID: "2"}, Shard: 5}
}

// The API's one error writer answers a call for a thread another replica
// holds with 421 and the shard, which the cluster's forwarding turns
// into the owner's answer.
func TestNotOwnedAnswer(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Deps{Deliveries: notMine{}, AdminToken: "tok"}).AdminHandler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/admin/deliveries/7/retry", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Code apierr.Code `json:"code"`
		} `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get(apierr.ShardHeader) != "5" || body.Error.Code != apierr.NotOwner {
		t.Fatalf("%d %s=%q code %q, want 421, shard 5, %q", resp.StatusCode, apierr.ShardHeader, resp.Header.Get(apierr.ShardHeader), body.Error.Code, apierr.NotOwner)
	}
}
