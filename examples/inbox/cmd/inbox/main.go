// Command inbox runs the example human-agent inbox behind Baton:
//
//	INBOX_HOOK_SECRET=whsec_... INBOX_API_TOKEN=... \
//	  go run ./examples/inbox/cmd/inbox -app inbox -app-id 734567890123456 \
//	  -baton http://127.0.0.1:8080 -listen 127.0.0.1:9003
//
// Point the inbox app's adapter (type http, standby: true) at
// http://<listen>/baton and open http://<listen>/ in a browser.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/batonhq/baton/examples/inbox"
)

func main() {
	app := flag.String("app", "inbox", "the inbox's app name in baton.yaml")
	appID := flag.String("app-id", "", "the inbox's Facebook app id")
	baton := flag.String("baton", "http://127.0.0.1:8080", "Baton's public URL")
	listen := flag.String("listen", "127.0.0.1:9003", "address for Baton's deliveries and the agents' browsers")
	done := flag.String("done", inbox.DonePass, "what Done does: pass (to the page's default app) or release")
	hookEnv := flag.String("hook-secret-env", "INBOX_HOOK_SECRET", "env var with the http adapter's secret")
	tokenEnv := flag.String("token-env", "INBOX_API_TOKEN", "env var with the inbox app's Baton token")
	flag.Parse()

	in, err := inbox.New(inbox.Options{App: *app, AppID: *appID, HookSecret: os.Getenv(*hookEnv), Baton: *baton,
		Token: os.Getenv(*tokenEnv), Done: *done})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: *listen, Handler: in.Handler(), ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		in.Close() // ends the live streams, or Shutdown would wait for them
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Printf("inbox for %s on http://%s/", *app, *listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
