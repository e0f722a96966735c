package main

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser starts a headless Chromium for the test. Without one it skips
// loudly, unless BATON_REQUIRE_BROWSER is set (scripts/test sets it once
// it has installed Chromium), where a missing browser fails the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("BATON_CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path != "" {
			break
		}
		path, _ = exec.LookPath(name)
	}
	if path == "" {
		if os.Getenv("BATON_REQUIRE_BROWSER") != "" {
			t.Fatal("no Chromium found, and BATON_REQUIRE_BROWSER is set: install Debian's chromium or set BATON_CHROMIUM")
		}
		t.Skip("\n*** SKIPPED: no Chromium on this machine, so the inbox's browser test did not run.\n" +
			"*** bash scripts/test installs Debian's chromium; or set BATON_CHROMIUM to a Chrome binary. ***")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 760),
		// The machine's network is closed: nothing may call home.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium %s: %v", path, err)
	}
	return ctx
}
