package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/inbox"
	"github.com/batonhq/baton/messenger"
)

// runInbox runs the human-agent inbox of the config's inbox section, or
// with -hash-password prints a bcrypt hash of the password on stdin for
// an agent's password_hash.
func runInbox(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("inbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "baton.yaml", "config file (its inbox section)")
	hash := fs.Bool("hash-password", false, "read a password on stdin and print its bcrypt hash for inbox.agents[].password_hash")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *hash {
		return hashPassword(os.Stdin, stdout)
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	if cfg.Inbox == nil {
		return fmt.Errorf("%w: %s has no inbox section (see the README's inbox section)", errUsage, *path)
	}
	log, err := buildLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	opt, err := inboxOptions(cfg, log.Named("inbox"))
	if err != nil {
		return err
	}
	in, err := inbox.New(opt)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Inbox.Listen)
	if err != nil {
		in.Close()
		return fmt.Errorf("inbox listen: %w", err)
	}
	fmt.Fprintf(stdout, "baton inbox: agents open http://%s/ (point the %s app's adapter at http://%s/baton); data in %s\n",
		l.Addr(), cfg.Inbox.App, l.Addr(), cfg.Inbox.Data)
	return serveInbox(ctx, in, l)
}

// serveInbox serves in on l and runs its background work until ctx ends.
func serveInbox(ctx context.Context, in *inbox.Inbox, l net.Listener) error {
	srv := in.Server()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- in.Run(ctx) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	cancel()
	in.CloseStreams() // or Shutdown waits for the live streams
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	<-runDone
	if cerr := in.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// inboxOptions builds the inbox from the config: its section, and the
// app's ids and secrets from apps.
func inboxOptions(cfg *config.Config, log *zap.Logger) (inbox.Options, error) {
	ic := cfg.Inbox
	app, ok := cfg.App(ic.App)
	if !ok || app.Adapter == nil {
		return inbox.Options{}, fmt.Errorf("inbox.app %q is not a hosted app", ic.App) // config validation refuses it first
	}
	proxies, err := inbox.ParseProxies(ic.Auth.TrustedProxies)
	if err != nil {
		return inbox.Options{}, err
	}
	opt := inbox.Options{App: app.Name, AppID: app.AppID, HookSecret: app.Adapter.Secret.Reveal(), Baton: ic.BatonURL, Token: app.APIToken.Reveal(),
		Data: ic.Data, Proxy: inbox.ProxyAuth{Header: ic.Auth.Header, Proxies: proxies}, Done: ic.Done.Action, ClosingMessage: ic.Done.ClosingMessage,
		TypingHold: ic.Hold.Typing, ClaimHold: ic.Hold.Claim, WarnBefore: ic.WarnBefore, Instagram: map[string]bool{}, Log: log}
	for _, a := range ic.Agents {
		opt.Agents = append(opt.Agents, inbox.Agent{Name: a.Name, DisplayName: a.DisplayName, PasswordHash: a.PasswordHash, Persona: a.Persona, Picture: a.Picture})
	}
	for _, c := range ic.Canned {
		opt.Canned = append(opt.Canned, inbox.Canned{Title: c.Title, Text: c.Text})
	}
	for _, a := range cfg.Apps {
		if a.AppID == string(messenger.PageInboxAppID) || a.AppID == string(messenger.InstagramInboxAppID) {
			opt.AgentApps = append(opt.AgentApps, a.Name)
		}
	}
	for _, p := range cfg.Pages {
		if p.Platform == config.PlatformInstagram {
			opt.Instagram[p.ID] = true
		}
		if p.Primary == app.Name || slices.Contains(p.Secondary, app.Name) {
			opt.Pages = append(opt.Pages, p.ID) // where it lists its threads at start
		}
	}
	return opt, nil
}

// hashPassword prints the bcrypt hash of the first line of r.
func hashPassword(r io.Reader, w io.Writer) error {
	line, err := bufio.NewReader(io.LimitReader(r, 1024)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 8 {
		return fmt.Errorf("%w: give a password of at least 8 characters on stdin", errUsage)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, string(h))
	return nil
}
