package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/metasetup"
)

// runSubscribe subscribes the hosted apps to their pages' webhooks at
// Meta (metasetup.Subscribe); -dry-run changes nothing.
func runSubscribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("subscribe", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "print what would change, change nothing")
	cfg, client, err := setupCommand(fs, args, stderr)
	if err != nil {
		return err
	}
	return metasetup.Subscribe(ctx, cfg, client, stdout, *dryRun)
}

// runDoctor checks a deployment against Meta, printing an ok, FIX or
// MANUAL line per check, and fails when any check is to fix.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return doctorWith(ctx, args, stdout, stderr, nil)
}

// doctorWith is runDoctor with the client the webhook handshake is made
// with (nil: metasetup.Doctor's default).
func doctorWith(ctx context.Context, args []string, stdout, stderr io.Writer, hc *http.Client) error {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the checks as JSON")
	cfg, client, err := setupCommand(fs, args, stderr)
	if err != nil {
		return err
	}
	checks := metasetup.Doctor(ctx, cfg, client, hc)
	if *asJSON {
		if err := printJSON(stdout, checks); err != nil {
			return err
		}
	} else {
		for _, c := range checks {
			fmt.Fprintln(stdout, c)
		}
	}
	if n := metasetup.Failures(checks); n > 0 {
		return fmt.Errorf("%d check(s) to fix", n)
	}
	return nil
}

// setupCommand parses the flags of a command that sets up or checks the
// config's apps at Meta (fs's own and -config), loads the config with its
// secrets and makes the Graph client for it.
func setupCommand(fs *flag.FlagSet, args []string, stderr io.Writer) (*config.Config, *messenger.Client, error) {
	fs.SetOutput(stderr)
	path := fs.String("config", "baton.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return nil, nil, err
	}
	client, err := graphClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, client, nil
}

// graphClient calls the config's Graph API once per call: a set-up
// command reports a failure rather than waiting on retries.
func graphClient(cfg *config.Config) (*messenger.Client, error) {
	return messenger.NewClient(messenger.ClientOptions{
		BaseURL:     cfg.Graph.URL,
		Version:     cfg.Graph.Version,
		HTTPClient:  &http.Client{Timeout: cfg.Graph.Timeout},
		MaxAttempts: 1,
	})
}
