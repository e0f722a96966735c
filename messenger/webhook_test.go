package messenger

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The fixtures in testdata/fixtures are copies of shared/messenger/fixtures,
// webhook bodies built to Meta's documented shapes.
func loadFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseEnvelopeFixtures(t *testing.T) {
	const page, psid = ID("100200300400500"), ID("7123456789012345")
	tests := []struct {
		file    string
		channel Channel
		kind    Kind
		check   func(t *testing.T, ev *Event)
	}{
		{"messages_text.json", ChannelMessaging, KindMessage, func(t *testing.T, ev *Event) {
			eq(t, ev.Message.Mid, "m_AbCdEf0123456789_text")
			eq(t, ev.Message.Text, "Hi, I need help with my order")
			eq(t, ev.Timestamp, int64(1718000000000))
		}},
		{"messages_attachment_image.json", ChannelMessaging, KindMessage, func(t *testing.T, ev *Event) {
			eq(t, len(ev.Message.Attachments), 1)
			eq(t, ev.Message.Attachments[0].Type, "image")
			eq(t, ev.Message.Attachments[0].Payload.URL, "https://scontent.xx.fbcdn.net/v/t1.15752-9/fake_image.jpg")
		}},
		{"messaging_handovers_pass_thread_control.json", ChannelMessaging, KindPassThreadControl, func(t *testing.T, ev *Event) {
			eq(t, ev.PassThreadControl.PreviousOwnerAppID, ID("623456789012345"))
			eq(t, ev.PassThreadControl.NewOwnerAppID, ID("512345678901234"))
			eq(t, ev.PassThreadControl.Metadata, `{"reason":"billing","ticket":"T-42"}`)
		}},
		{"messaging_handovers_pass_thread_control_from_idle.json", ChannelMessaging, KindPassThreadControl, func(t *testing.T, ev *Event) {
			eq(t, ev.PassThreadControl.PreviousOwnerAppID, ID("")) // null: the thread was idle
			eq(t, ev.PassThreadControl.NewOwnerAppID, ID("512345678901234"))
			eq(t, ev.PassThreadControl.Metadata, "granted-on-request")
		}},
		{"messaging_handovers_take_thread_control.json", ChannelMessaging, KindTakeThreadControl, func(t *testing.T, ev *Event) {
			eq(t, ev.TakeThreadControl.PreviousOwnerAppID, ID("512345678901234"))
			eq(t, ev.TakeThreadControl.NewOwnerAppID, PageInboxAppID)
			eq(t, ev.TakeThreadControl.Metadata, "")
		}},
		{"messaging_handovers_request_thread_control.json", ChannelMessaging, KindRequestThreadControl, func(t *testing.T, ev *Event) {
			eq(t, ev.RequestThreadControl.RequestedOwnerAppID, ID("623456789012345")) // a JSON number
			eq(t, ev.RequestThreadControl.Metadata, "agent wants this thread")
		}},
		{"messaging_handovers_app_roles.json", ChannelMessaging, KindAppRoles, func(t *testing.T, ev *Event) {
			eq(t, ev.Sender == nil, true)
			eq(t, ev.UserID(), ID(""))
			eq(t, reflect.DeepEqual(ev.AppRoles, map[ID][]string{"512345678901234": {"primary_receiver"}}), true)
		}},
		{"standby_message.json", ChannelStandby, KindMessage, func(t *testing.T, ev *Event) {
			eq(t, ev.Message.Text, "Is anyone there?")
		}},
		{"standby_postback_no_payload.json", ChannelStandby, KindPostback, func(t *testing.T, ev *Event) {
			eq(t, ev.Postback.Title, "Track my order")
			eq(t, ev.Postback.Payload, "")
			eq(t, ev.Postback.Mid, "m_AbCdEf0123456789_pbsb")
		}},
		{"message_echo_own_app.json", ChannelMessaging, KindEcho, func(t *testing.T, ev *Event) {
			eq(t, ev.Message.AppID, ID("512345678901234")) // a JSON number
			eq(t, ev.Message.Metadata, "orch:send:01J0ABCDEF")
			eq(t, ev.Sender.ID, page) // echoes come from the page
		}},
		{"message_read.json", ChannelMessaging, KindRead, func(t *testing.T, ev *Event) {
			eq(t, ev.Read.Watermark, int64(1718000012000))
		}},
		{"message_delivery.json", ChannelMessaging, KindDelivery, func(t *testing.T, ev *Event) {
			eq(t, ev.Delivery.Watermark, int64(1718000012000))
			eq(t, ev.Delivery.Mids[0], "m_AbCdEf0123456789_echo_own")
		}},
		{"postback_get_started_with_referral.json", ChannelMessaging, KindPostback, func(t *testing.T, ev *Event) {
			eq(t, ev.Postback.Payload, "GET_STARTED")
			eq(t, ev.Postback.Referral.Ref, "campaign-spring_2026")
			eq(t, ev.Postback.Referral.Source, "SHORTLINK")
			eq(t, ev.Postback.Referral.Type, "OPEN_THREAD")
		}},
		{"referral_mme_link.json", ChannelMessaging, KindReferral, func(t *testing.T, ev *Event) {
			eq(t, ev.Referral.Ref, "support=billing")
			eq(t, ev.Referral.Source, "SHORTLINK")
		}},
		{"referral_ad.json", ChannelMessaging, KindReferral, func(t *testing.T, ev *Event) {
			eq(t, ev.Referral.Source, "ADS")
			eq(t, ev.Referral.AdID, ID("120210000000000001"))
			eq(t, ev.Referral.AdsContextData.AdTitle, "Spring sale")
			eq(t, ev.Referral.AdsContextData.ProductID, "555")
		}},
		{"optin_one_time_notif.json", ChannelMessaging, KindOptin, func(t *testing.T, ev *Event) {
			eq(t, ev.Optin.Type, OptinOneTimeNotif)
			eq(t, ev.Optin.Payload, "BACK_IN_STOCK_SKU_123")
			eq(t, ev.Optin.OneTimeNotifToken, "OTN_TOKEN_6yR2m1K9fakeValue")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			env, err := ParseEnvelope(loadFixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var n int
			env.Each(func(en *Entry, ch Channel, ev *Event) {
				n++
				eq(t, en.ID, page)
				eq(t, ch, tt.channel)
				eq(t, ev.Kind(), tt.kind)
				eq(t, ev.Recipient.ID != "", true)
				if tt.kind != KindAppRoles {
					eq(t, ev.UserID(), psid)
				}
				if !json.Valid(ev.Raw) || len(ev.Raw) == 0 {
					t.Errorf("raw event not kept: %q", ev.Raw)
				}
				tt.check(t, ev)
			})
			eq(t, n, 1)
		})
	}
}

func TestParseEnvelopeBatchedAndUnknownKeys(t *testing.T) {
	body := []byte(`{"object":"page","hop_context":{"x":1},"entry":[
	 {"id":1,"time":1,"hop_context":[],"messaging":[
	   {"sender":{"id":"1"},"recipient":{"id":"9"},"timestamp":1,"message":{"mid":"a","text":"one","future":true}},
	   {"sender":{"id":"1"},"recipient":{"id":"9"},"timestamp":2,"brand_new_event":{}}]},
	 {"id":"2","time":2,"standby":[{"sender":{"id":"3"},"recipient":{"id":"2"},"timestamp":3,"message_edit":{"mid":"x"}}]}]}`)
	env, err := ParseEnvelope(body)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	env.Each(func(en *Entry, ch Channel, ev *Event) {
		got = append(got, string(en.ID)+"/"+string(ch)+"/"+string(ev.Kind()))
	})
	want := []string{"1/messaging/message", "1/messaging/unknown", "2/standby/unknown"}
	eq(t, reflect.DeepEqual(got, want), true)
}

func TestParseEnvelopeRejects(t *testing.T) {
	for name, body := range map[string]string{
		"not json":      `{"object":`,
		"not page":      `{"object":"instagram","entry":[{"id":"1"}]}`,
		"no entries":    `{"object":"page","entry":[]}`,
		"entry no id":   `{"object":"page","entry":[{"time":1}]}`,
		"fractional id": `{"object":"page","entry":[{"id":1.5}]}`,
		"id is object":  `{"object":"page","entry":[{"id":{}}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseEnvelope([]byte(body)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestIDEncodesAsStringAndNull(t *testing.T) {
	b, _ := json.Marshal(PassThreadControl{NewOwnerAppID: "5"})
	eq(t, string(b), `{"previous_owner_app_id":null,"new_owner_app_id":"5"}`)
}

func eq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}

// Instagram bodies (testdata/instagram, built to the shapes of Meta's
// Instagram webhook examples): ParseWebhook takes them, ParseEnvelope
// still refuses them.
func TestParseWebhookInstagram(t *testing.T) {
	const account, igsid = ID("17841400100200300"), ID("6912345678901234")
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join("testdata", "instagram", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	body := read("messages_text.json")
	if _, err := ParseEnvelope(body); !errors.Is(err, ErrNotPage) {
		t.Fatalf("ParseEnvelope on Instagram: %v, want ErrNotPage", err)
	}
	env, err := ParseWebhook(body)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, env.Object, ObjectInstagram)
	eq(t, env.IsInstagram(), true)
	eq(t, env.Entry[0].ID, account)
	ev := env.Entry[0].Messaging[0]
	eq(t, ev.Kind(), KindMessage)
	eq(t, ev.UserID(), igsid)
	eq(t, ev.Message.Text, "Hi, where is my order?")

	env, err = ParseWebhook(read("take_then_standby_batched.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	env.Each(func(en *Entry, ch Channel, ev *Event) {
		got = append(got, string(ch)+"/"+string(ev.Kind()))
	})
	eq(t, strings.Join(got, " "), "standby/message messaging/take_thread_control")
	tk := env.Entry[1].Messaging[0].TakeThreadControl
	eq(t, tk.PreviousOwnerAppID, ID("512345678901234")) // numbers, as Meta sends them
	eq(t, tk.NewOwnerAppID, InstagramInboxAppID)

	// Messenger bodies parse the same through ParseWebhook.
	env, err = ParseWebhook(loadFixture(t, "messages_text.json"))
	if err != nil || env.Object != ObjectPage || env.IsInstagram() {
		t.Fatalf("Messenger body through ParseWebhook: %+v %v", env, err)
	}
	for name, body := range map[string]string{
		"other object": `{"object":"whatsapp_business_account","entry":[{"id":"1"}]}`,
		"no object":    `{"entry":[{"id":"1"}]}`,
		"no entries":   `{"object":"instagram","entry":[]}`,
		"entry no id":  `{"object":"instagram","entry":[{"time":1}]}`,
	} {
		if _, err := ParseWebhook([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseWebhook([]byte(`{"object":"user","entry":[{"id":"1"}]}`)); !errors.Is(err, ErrUnknownObject) {
		t.Errorf("unknown object: %v, want ErrUnknownObject", err)
	}
}
