package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestThreadsCommand(t *testing.T) {
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/admin/threads/1/7":
			io.WriteString(w, `{"page_id":"1","psid":"7","state":"secondary","owner":"billing-bot","owner_app_id":"62",
				"pending":[{"rule":"return","at":"2026-11-24T10:30:00Z","target":"support-bot","reason":"billing-bot idle 30m0s"}],
				"history":[{"at":"2026-11-24T10:00:00Z","event":"pass","from":"","to":"billing-bot","by":"support-bot","cause":"call","metadata":"billing"}]}`)
		case r.URL.Path == "/admin/threads" && r.URL.Query().Get("cursor") == "":
			io.WriteString(w, `{"threads":[{"page_id":"1","psid":"7","state":"idle"}],"next_cursor":"c1"}`)
		case r.URL.Path == "/admin/threads":
			io.WriteString(w, `{"threads":[{"page_id":"1","psid":"8","state":"primary","owner":"support-bot"}],"next_cursor":""}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer admin.Close()
	t.Setenv("BATON_ADMIN_TOKEN", "tok")

	var out, errb strings.Builder
	if code := run(context.Background(), []string{"threads", "show", "-admin", admin.URL, "1", "7"}, &out, &errb); code != 0 {
		t.Fatalf("show: exit %d, %s", code, errb.String())
	}
	for _, want := range []string{"owner   billing-bot 62", "pass  - -> billing-bot  by support-bot  (call)  billing",
		"2026-11-24T10:30:00Z  return  -> support-bot  billing-bot idle 30m0s"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("show output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"threads", "list", "-admin", admin.URL}, &out, &errb); code != 0 {
		t.Fatalf("list: exit %d, %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "7  ") || !strings.Contains(out.String(), "support-bot") {
		t.Fatalf("list did not follow the cursor:\n%s", out.String())
	}
	t.Setenv("BATON_ADMIN_TOKEN", "wrong")
	errb.Reset()
	if code := run(context.Background(), []string{"threads", "list", "-admin", admin.URL}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "401") {
		t.Fatalf("wrong token: exit %d, %s", code, errb.String())
	}
}
