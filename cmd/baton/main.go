// Command baton orchestrates Messenger conversations shared by several
// apps. Each subcommand lives in a file of its own; main only dispatches,
// handles signals and turns errors into exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// errUsage marks errors that are the caller's mistake: exit code 2.
var errUsage = errors.New("usage")

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"demo", "run Baton, the fake platform, a FAQ bot and the inbox together", runDemo},
		{"serve", "run Baton with a config file", runServe},
		{"inbox", "run the human-agent inbox of the config's inbox section", runInbox},
		{"check", "validate a config file", runCheck},
		{"subscribe", "subscribe the hosted apps to their pages' webhooks at Meta", runSubscribe},
		{"doctor", "check tokens, permissions, subscriptions and the webhook URL against Meta", runDoctor},
		{"threads", "list threads or show one (talks to the admin API)", runThreads},
		{"cluster", "show the replicas of a cluster and the shards each holds (talks to the admin API)", runCluster},
		{"backup", "save a consistent copy of a running Baton's data file", runBackup},
		{"erase", "remove everything a running Baton keeps about one person", runErase},
		{"platform", "run the fake Messenger platform alone", runPlatform},
		{"bench", "measure Baton against a bare handler on this machine", runBench},
		{"version", "print the version, commit and Go version this binary was built with", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 2
	}
	if args[0] == "-version" || args[0] == "--version" {
		args = []string{"version"}
	}
	// bench-baseline and bench-glue are the peers bench starts, each in a
	// process of its own.
	all := append(commands(), command{"bench-baseline", "", runBenchBaseline}, command{"bench-glue", "", runBenchGlue})
	for _, c := range all {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			fmt.Fprintf(stderr, "baton %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "baton %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "baton: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: baton <command> [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'baton <command> -h' for a command's flags.")
}
