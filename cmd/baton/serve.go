package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/orchestrator"
	"github.com/batonhq/baton/store"
	"github.com/batonhq/baton/store/bolt"
	"github.com/batonhq/baton/store/postgres"
)

// runServe runs Baton until SIGINT or SIGTERM; SIGHUP reloads the config
// file (orchestrator.Server.Reload, which logs what it did).
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "baton.yaml", "config file")
	// Several replicas may share one file: what differs between them
	// comes from flags.
	listen := fs.String("listen", "", "public listener address (overrides listen)")
	adminListen := fs.String("admin-listen", "", "admin listener address (overrides admin.listen)")
	replica := fs.String("replica", "", "this replica's name (overrides cluster.name)")
	internal := fs.String("internal-listen", "", "the internal listener's address (overrides cluster.internal_listen)")
	advertise := fs.String("advertise", "", "the URL other replicas reach the internal listener at (overrides cluster.advertise)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	if err := applyServeFlags(cfg, *listen, *adminListen, *replica, *internal, *advertise); err != nil {
		return err
	}
	log, err := buildLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	raiseOpenFiles(log)
	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	srv, err := orchestrator.NewServer(cfg, db, orchestrator.ServerOptions{Log: log})
	if err != nil {
		return err
	}
	started, ran, bannered := time.Now(), make(chan struct{}), make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		defer close(bannered)
		select {
		case <-srv.Listening():
		case <-ran: // Run failed before it listened
			return
		}
		pub, adm := srv.Addrs()
		fmt.Fprintf(stdout, "baton: webhooks and bot API on %s, admin API on %s, data in %s\n", pub, adm, cfg.StoreName())
		select {
		case <-srv.O.Ready():
		case <-ran:
			return
		}
		bi := readBuildInfo()
		log.Info("baton started", zap.String("version", bi.Version), zap.String("revision", bi.Revision), zap.String("public", pub), zap.String("admin", adm),
			zap.String("data", cfg.StoreName()), zap.Int("pages", len(cfg.Pages)), zap.Int("apps", len(cfg.Apps)), zap.Duration("startup", time.Since(started)))
	}()
	// The drain is from the signal to the last part stopped: requests in
	// flight finishing, deliveries in flight answered or put back.
	stopAt := make(chan time.Time, 1)
	defer context.AfterFunc(ctx, func() { stopAt <- time.Now() })()
	reloads := make(chan struct{})
	go func() { reloadOnHangup(srv, hup, ran); close(reloads) }()
	err = srv.Run(ctx)
	close(ran)
	<-reloads
	<-bannered // its lines come before the last one, on the same writers
	var drain time.Duration
	select {
	case t := <-stopAt:
		drain = time.Since(t)
	default:
	}
	if err != nil {
		log.Error("baton stopped", zap.Duration("drain", drain), zap.Error(err))
		return err
	}
	log.Info("baton stopped", zap.Duration("drain", drain))
	return nil
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

// openStore opens the config's store: the bbolt file of data (the
// embedded store; a file another Baton holds fails at once and says so),
// or the PostgreSQL database of store.postgres, migrated to this binary's
// schema and held by this process alone (a second serve on it fails at
// once) until shard leases let replicas share it.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	if p := cfg.Store.Postgres; p != nil {
		// One process holds the database alone unless it is one of
		// several replicas, which share it through the shard leases.
		return postgres.Open(ctx, p.DSN.Reveal(), postgres.Options{
			Schema: p.Schema, MaxConns: int32(p.MaxConns), CommitWait: cfg.Webhooks.CommitWait, Exclusive: cfg.Cluster == nil, Shared: cfg.Cluster != nil,
		})
	}
	return bolt.Open(cfg.Data, bolt.Options{CommitWait: cfg.Webhooks.CommitWait})
}

func buildLogger(c config.Log, w io.Writer) (*zap.Logger, error) {
	var lvl zapcore.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	// One rule for durations in every log line: zap.Duration fields, which
	// this prints with their unit ("1.5s", "250ms"), never a bare number.
	encCfg.EncodeDuration = zapcore.StringDurationEncoder
	enc := zapcore.NewJSONEncoder(encCfg)
	if c.Format == "console" {
		enc = zapcore.NewConsoleEncoder(encCfg)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), lvl)), nil
}

// The replicas' store is PostgreSQL's.
var _ orchestrator.ClusterStore = (*postgres.DB)(nil)

// applyServeFlags puts serve's flags over the file's settings, and checks
// what they set as the file's own are checked.
func applyServeFlags(cfg *config.Config, listen, adminListen, replica, internal, advertise string) error {
	if listen != "" {
		cfg.Listen = listen
	}
	if adminListen != "" {
		cfg.Admin.Listen = adminListen
	}
	c := cfg.Cluster
	if c == nil {
		if replica != "" || internal != "" || advertise != "" {
			return fmt.Errorf("-replica, -internal-listen and -advertise are for a replica: add a cluster: section to %s", cfg.Path)
		}
		return nil
	}
	if replica != "" {
		c.Name = replica
	}
	if internal != "" {
		c.InternalListen = internal
		if advertise == "" {
			advertise = config.AdvertiseFor(internal)
		}
	}
	if advertise != "" {
		c.Advertise = advertise
	}
	return config.CheckCluster(cfg)
}
