package ingress

import (
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger"
)

func TestIsID(t *testing.T) {
	for id, want := range map[messenger.ID]bool{
		"7123456789012345":                    true,
		"1":                                   true,
		"18446744073709551615":                true,
		"":                                    false,
		"-5":                                  false,
		"71234abc":                            false,
		"7123456789012345\x00":                false,
		" 7123":                               false,
		"７１２３":                                false, // full-width digits
		messenger.ID(strings.Repeat("7", 21)): false,
	} {
		if got := isID(id); got != want {
			t.Errorf("isID(%q) = %v", id, got)
		}
	}
}

func TestBadID(t *testing.T) {
	page, person := messenger.ID("100200300400500"), messenger.ID("7123456789012345")
	entry := &messenger.Entry{ID: page}
	for _, c := range []struct {
		name  string
		entry *messenger.Entry
		ev    messenger.Event
		want  string // a prefix of the problem; "" for none
	}{
		{"message", entry, messenger.Event{Sender: &messenger.Party{ID: person}, Recipient: messenger.Party{ID: page}, Message: &messenger.Message{Mid: "m"}}, ""},
		{"user_ref sender", entry, messenger.Event{Sender: &messenger.Party{UserRef: "ref"}, Recipient: messenger.Party{ID: page}, Optin: &messenger.Optin{}}, ""},
		{"idle pass", entry, messenger.Event{Sender: &messenger.Party{ID: person}, Recipient: messenger.Party{ID: page}, PassThreadControl: &messenger.PassThreadControl{NewOwnerAppID: "512345678901234"}}, ""},
		{"entry", &messenger.Entry{ID: page + "\x00"}, messenger.Event{Sender: &messenger.Party{ID: person}}, "entry.id"},
		{"sender", entry, messenger.Event{Sender: &messenger.Party{ID: person + "\x00" + page}, Recipient: messenger.Party{ID: page}}, "sender.id"},
		{"recipient", entry, messenger.Event{Sender: &messenger.Party{ID: person}, Recipient: messenger.Party{ID: "page"}}, "recipient.id"},
		{"echo app", entry, messenger.Event{Sender: &messenger.Party{ID: page}, Recipient: messenger.Party{ID: person}, Message: &messenger.Message{IsEcho: true, AppID: "x1"}}, "message.app_id"},
		{"take", entry, messenger.Event{Sender: &messenger.Party{ID: person}, Recipient: messenger.Party{ID: page}, TakeThreadControl: &messenger.TakeThreadControl{NewOwnerAppID: "1", PreviousOwnerAppID: "1 "}}, "take_thread_control.previous_owner_app_id"},
		{"request", entry, messenger.Event{Sender: &messenger.Party{ID: person}, Recipient: messenger.Party{ID: page}, RequestThreadControl: &messenger.RequestThreadControl{RequestedOwnerAppID: messenger.ID(strings.Repeat("1", 40))}}, "request_thread_control"},
		{"app roles", entry, messenger.Event{Recipient: messenger.Party{ID: page}, AppRoles: map[messenger.ID][]string{"abc": {"primary_receiver"}}}, "app_roles"},
	} {
		got := badID(c.entry, &c.ev)
		if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := quoteShort(strings.Repeat("\x00", 100)); len(got) > 250 || !strings.HasSuffix(got, "...") {
		t.Errorf("quoteShort kept %d bytes", len(got))
	}
}

func TestEventTime(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for ms, want := range map[int64]time.Time{
		now.Add(-time.Hour).UnixMilli():  now.Add(-time.Hour),
		now.UnixMilli():                  now,
		now.Add(time.Second).UnixMilli(): now,
		9223372036854:                    now, // year 2262
		1 << 62:                          now,
		0:                                now,
		-1:                               now,
	} {
		if got := eventTime(ms, now); !got.Equal(want) {
			t.Errorf("eventTime(%d) = %v, want %v", ms, got, want)
		}
	}
}
