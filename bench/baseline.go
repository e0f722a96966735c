package bench

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/batonhq/baton/bench/lab"
	"github.com/batonhq/baton/messenger"
)

// Baseline is the bare handler Baton is compared with: read, verify the
// signature on the raw bytes, decode, answer 200. Nothing is stored.
func Baseline(secret []byte, maxBody int64) http.Handler {
	verifier := messenger.NewVerifier(secret, messenger.VerifyOptions{}) // as Baton's ingress keeps its HMACs
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		if verifier.Verify(r.Header, body) != nil {
			http.Error(w, "signature", http.StatusUnauthorized)
			return
		}
		if _, err := messenger.ParseEnvelope(body); err != nil {
			http.Error(w, "decode", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "EVENT_RECEIVED")
	})
}

// ServeBaseline serves Baseline on listen until ctx ends: it is the process
// `baton bench-baseline` that Measure starts, with the app secret in the
// environment it gives it (see lab.Env).
func ServeBaseline(ctx context.Context, listen string) error {
	return serveChild(ctx, listen, Baseline([]byte(os.Getenv(lab.SecretEnv)), 1<<20))
}

// serveChild serves h for webhooks, and /healthz, on listen until ctx ends.
func serveChild(ctx context.Context, listen string, h http.Handler) error {
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{app}", h)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := &http.Server{Addr: listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped: // the listener failed
		}
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
