package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator"
	"github.com/batonhq/baton/store/bolt"
)

// runServe runs Baton until SIGINT or SIGTERM; SIGHUP reloads the config
// file (orchestrator.Server.Reload, which logs what it did).
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "baton.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	log, err := buildLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	raiseOpenFiles(log)
	db, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	srv, err := orchestrator.NewServer(cfg, db, orchestrator.ServerOptions{Log: log})
	if err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		<-srv.Listening()
		pub, adm := srv.Addrs()
		fmt.Fprintf(stdout, "baton: webhooks and bot API on %s, admin API on %s, data in %s\n", pub, adm, cfg.Data)
	}()
	stopped, reloads := make(chan struct{}), make(chan struct{})
	go func() { reloadOnHangup(srv, hup, stopped); close(reloads) }()
	err = srv.Run(ctx)
	close(stopped)
	<-reloads
	return err
}

// reloadOnHangup reloads the config at each signal until stopped; an
// error is already logged and counted, and the running config goes on.
func reloadOnHangup(srv *orchestrator.Server, hup <-chan os.Signal, stopped <-chan struct{}) {
	for {
		select {
		case <-hup:
			_ = srv.Reload()
		case <-stopped:
			return
		}
	}
}

// openStore opens the config's bbolt file: the embedded store. A file
// another Baton holds fails at once and says so.
func openStore(cfg *config.Config) (*bolt.DB, error) {
	return bolt.Open(cfg.Data, bolt.Options{CommitWait: cfg.Webhooks.CommitWait})
}

func buildLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	enc := zapcore.NewJSONEncoder(encCfg)
	if c.Format == "console" {
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}
