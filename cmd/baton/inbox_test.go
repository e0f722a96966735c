package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
