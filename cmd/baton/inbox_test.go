package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestInboxHashPassword(t *testing.T) {
	var out bytes.Buffer
	if err := hashPassword(strings.NewReader("correct horse\n"), &out); err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword(bytes.TrimSpace(out.Bytes()), []byte("correct horse")); err != nil {
		t.Fatalf("hash %q: %v", out.String(), err)
	}
	if err := hashPassword(strings.NewReader("short\n"), &out); !errors.Is(err, errUsage) {
		t.Fatalf("a short password: %v", err)
	}
}

func TestInboxNeedsItsSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "baton.yaml")
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "testdata", "good.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"BATON_ADMIN_TOKEN", "SUPPORT_BOT_SECRET", "SUPPORT_BOT_VERIFY_TOKEN", "SUPPORT_BOT_API_TOKEN", "SUPPORT_BOT_HOOK_SECRET", "PAGE_TOKEN_SUPPORT_BOT"} {
		t.Setenv(k, "value-of-"+k+"-0123456789")
	}
	var stdout, stderr bytes.Buffer
	err = runInbox(context.Background(), []string{"-config", path}, &stdout, &stderr)
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "has no inbox section") {
		t.Fatalf("err = %v (%s)", err, stderr.String())
	}
}

// TestInboxFindsItsConversationsAfterItsDataIsLost: the inbox's file is
// deleted while a conversation is with the inbox; started again on an
// empty file, it lists what it owns at Baton and has the conversation
// back, assigned, with what was said from Baton's transcript.
func TestInboxFindsItsConversationsAfterItsDataIsLost(t *testing.T) {
	d := startTestDemo(t)
	const psid = "7000000000000009"
	d.escalate(t, psid)
	d.personWrites(t, psid, "my order never came")
	if err := d.stopInboxNow(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(d.inboxOpt.Data); err != nil {
		t.Fatal(err)
	}
	if err := d.startInbox(nil); err != nil {
		t.Fatal(err)
	}
	anna := d.signIn(t, "anna") // a new file: a new session
	type conv struct {
		PSID     string `json:"psid"`
		Assigned bool   `json:"assigned"`
		Why      string `json:"why"`
	}
	eventually(t, "the conversation back in the list", func() bool {
		var l struct{ Conversations []conv }
		anna.call(t, http.MethodGet, d.inboxURL+"/api/conversations", "", &l)
		return len(l.Conversations) == 1 && l.Conversations[0].PSID == psid && l.Conversations[0].Assigned
	})
	var detail struct {
		Conversation conv
		Messages     []struct{ From, Text string }
	}
	wants := []string{"person: what are your hours?", "person: I want a human", "event: handed to the inbox: ", "person: my order never came"}
	var history string
	// The conversation is listed once found at Baton; its messages and the
	// handover's reason come from Baton's transcript right after.
	filled := func() bool {
		detail.Messages = nil
		anna.call(t, http.MethodGet, fmt.Sprintf("%s/api/conversations/%s/%s", d.inboxURL, demoPage, psid), "", &detail)
		var got []string
		for _, m := range detail.Messages {
			got = append(got, m.From+": "+m.Text)
		}
		history = strings.Join(got, "\n")
		for _, want := range wants {
			if !strings.Contains(history, want) {
				return false
			}
		}
		return detail.Conversation.Why != ""
	}
	deadline := time.Now().Add(10 * time.Second)
	for !filled() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // the inbox's own work: nothing announces it to the test
	}
	for _, want := range wants {
		if !strings.Contains(history, want) {
			t.Errorf("after losing its data the inbox does not show %q in\n%s", want, history)
		}
	}
	if detail.Conversation.Why == "" {
		t.Errorf("no reason for the handover: %+v", detail.Conversation)
	}
}
