package main

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/browsertest"
)

// browser starts a headless Chromium for the test (browsertest.Start).
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, browsertest.Options{Width: 1280, Height: 760, Timeout: 60 * time.Second, What: "the inbox's browser test"})
}
