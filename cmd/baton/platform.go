package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/messenger/messengertest"
)

// runPlatform serves the fake Messenger platform until ctx ends.
func runPlatform(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("platform", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "platform config file (YAML)")
	listen := fs.String("listen", "", "address to serve on (overrides the config's listen)")
	verbose := fs.Bool("v", false, "log every webhook attempt")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return fmt.Errorf("%w: -config is required", errUsage)
	}
	cfg, err := messengertest.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:9090"
	}
	log, err := newLogger(*verbose)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	p, err := messengertest.New(*cfg, messengertest.WithLogger(log.Named("platform")))
	if err != nil {
		return err
	}
	defer p.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := cfg.PublicURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	printPlatformBanner(stdout, base, p)

	srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 10 * time.Second}
	// Calls a fault holds end when the platform closes; Shutdown would
	// otherwise wait for them.
	srv.RegisterOnShutdown(p.Close)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func printPlatformBanner(w io.Writer, base string, p *messengertest.Platform) {
	fmt.Fprintf(w, "fake Messenger platform on %s (Graph API and /_platform/)\n", base)
	for _, pg := range p.Pages() {
		fmt.Fprintf(w, "  page %s (%s), mode %s, default app %q\n", pg.ID, pg.Name, pg.Mode, pg.DefaultApp)
		for _, a := range pg.Apps {
			cb := a.CallbackURL
			if cb == "" {
				cb = "no webhooks"
			}
			fmt.Fprintf(w, "    app %-14s %s -> %s\n", a.Name, a.ID, cb)
		}
	}
	if pages := p.Pages(); len(pages) > 0 {
		pg := pages[0].ID
		fmt.Fprintf(w, "\nA person writes:\n  curl -s -X POST '%s/_platform/pages/%s/users/7123456789012345/messages?wait=true' -d '{\"text\":\"hello\"}'\n", base, pg)
		fmt.Fprintf(w, "Who owns the thread:\n  curl -s %s/_platform/pages/%s/threads/7123456789012345\n", base, pg)
		fmt.Fprintf(w, "Webhooks sent:\n  curl -s %s/_platform/webhooks\n\n", base)
	}
}

func newLogger(verbose bool) (*zap.Logger, error) {
	cfg := zap.NewDevelopmentConfig()
	cfg.DisableStacktrace = true
	if !verbose {
		cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	}
	return cfg.Build()
}
