// Package browsertest starts the headless Chromium that the web pages'
// tests drive (the console, the inbox, the demo): found on the PATH or at
// BATON_CHROMIUM; without one a test skips loudly, unless
// BATON_REQUIRE_BROWSER is set (scripts/test sets it once it has installed
// Chromium), where a missing browser fails it.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Options size the window and bound the test.
type Options struct {
	Width, Height int
	Timeout       time.Duration // the whole test's browser work (default 90s)
	What          string        // what the skip message says did not run
}

// startAttempts: Chromium sometimes dies while it starts on a loaded
// machine (two packages' browser tests start together under go test
// ./...); a fresh profile on a second try starts it. A page that fails
// is never retried: only the launch.
const startAttempts = 3

// Start returns a browser context for t, closed when t ends.
func Start(t *testing.T, o Options) context.Context {
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
		t.Skip("\n*** SKIPPED: no Chromium on this machine, so " + o.What + " did not run.\n" +
			"*** bash scripts/test installs Debian's chromium; or set BATON_CHROMIUM to a Chrome binary. ***")
	}
	if o.Timeout == 0 {
		o.Timeout = 90 * time.Second
	}
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var ctx context.Context
		var stop func()
		if ctx, stop, err = launch(t, path, t.TempDir(), o); err == nil {
			t.Cleanup(stop)
			return ctx
		}
		stop()
		t.Logf("Chromium did not start (attempt %d of %d): %v", attempt, startAttempts, err)
	}
	t.Fatalf("start Chromium %s: %v", path, err)
	return nil
}

func launch(t *testing.T, path, profile string, o Options) (context.Context, func(), error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(o.Width, o.Height),
		// The machine's network is closed: nothing may call home.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-component-update", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	ctx, cancelTimeout := context.WithTimeout(ctx, o.Timeout)
	stop := func() { cancelTimeout(); cancel(); cancelAlloc() }
	return ctx, stop, chromedp.Do(ctx) // starts the browser
}
