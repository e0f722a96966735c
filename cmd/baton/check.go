package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator/tlsserve"
)

// runCheck validates a config file, printing every problem with its line.
// With -offline it runs without the secrets (CI): variables that are not
// set are no error, and it says once that their values went unchecked.
func runCheck(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "baton.yaml", "config file")
	offline := fs.Bool("offline", false, "check structure and references only: secrets need not be set")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*offline {
		cfg, err := loadConfig(*path, stderr)
		if err != nil {
			return err
		}
		if err := checkFiles(cfg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: ok (%d apps, %d pages)\n", *path, len(cfg.Apps), len(cfg.Pages))
		return nil
	}
	cfg, unset, err := config.LoadOffline(*path, os.LookupEnv)
	if err := printProblems(*path, err, stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok offline (%d apps, %d pages)\n", *path, len(cfg.Apps), len(cfg.Pages))
	if len(unset) > 0 {
		fmt.Fprintf(stdout, "secrets not checked: %d variable(s) not set (%s); run baton check without -offline where they are\n", len(unset), strings.Join(unset, ", "))
	}
	return nil
}

// checkFiles opens what the config names on this machine and baton serve
// would open at start: the certificate pair, so that a wrong path or a key
// of another certificate fails the check rather than the start.
func checkFiles(cfg *config.Config) error {
	if t := cfg.TLS; t != nil && t.CertFile != "" {
		if _, err := tlsserve.LoadFiles(t.CertFile, t.KeyFile, tlsserve.Options{}); err != nil {
			return fmt.Errorf("%s: %w", cfg.Path, err)
		}
	}
	return nil
}

// loadConfig reads the config with secrets from the environment, printing
// each problem on its own line to stderr.
func loadConfig(path string, stderr io.Writer) (*config.Config, error) {
	cfg, err := config.Load(path, os.LookupEnv)
	if err := printProblems(path, err, stderr); err != nil {
		return nil, err
	}
	return cfg, nil
}

// printProblems prints each of a config's problems on its own line.
func printProblems(path string, err error, stderr io.Writer) error {
	var problems config.Errors
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		return fmt.Errorf("%s: %d problem(s)", path, len(problems))
	}
	return err
}
