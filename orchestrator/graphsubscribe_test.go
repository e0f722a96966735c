package orchestrator_test

import (
	"slices"
	"testing"

	"github.com/batonhq/baton/messenger"
)

// A bot that subscribes its page through /graph (many SDKs do at start)
// with fewer fields than Baton needs keeps Baton's in the subscription:
// Meta replaces an app's fields with those a call names, and without
// handovers, standby and echoes Baton's record would drift from Meta's.
func TestGraphSubscriptionKeepsBatonsFields(t *testing.T) {
	h := newHarness(t)
	tok := env["SUPPORT_API"]
	var res map[string]any
	if st := graphCall(t, h, "POST", "/v6.0/me/subscribed_apps?subscribed_fields=messages,messaging_policy_enforcement", tok, nil, &res); st != 200 || res["success"] != true {
		t.Fatalf("subscribe: %d %v", st, res)
	}
	var got struct {
		Data []struct {
			ID               string   `json:"id"`
			SubscribedFields []string `json:"subscribed_fields"`
		}
	}
	graphCall(t, h, "GET", "/v6.0/me/subscribed_apps", tok, nil, &got)
	var fields []string
	for _, a := range got.Data {
		if a.ID == supportID {
			fields = a.SubscribedFields
		}
	}
	for _, f := range append([]string{"messaging_policy_enforcement"}, messenger.FieldsForConversationRouting...) {
		if !slices.Contains(fields, f) {
			t.Errorf("the page subscription lacks %s: %v", f, fields)
		}
	}
}
