package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/batonhq/baton/bench/lab"
	"github.com/batonhq/baton/messenger"
)

// Glue is the forwarder a team writes instead of Baton, honestly: read,
// verify the signature, decode, POST each event to the bot in Meta's
// format (signed with the same app secret, so that the bot's SDK checks it
// unchanged) over a pooled keep-alive client, and answer 200 once the bot
// answered 2xx. Nothing is durable and nothing is retried: a bot's failure
// is the sender's 500, and Meta resends the whole webhook.
func Glue(secret []byte, botURL string, client *http.Client, maxBody int64) http.Handler {
	type entry struct {
		ID        string            `json:"id"`
		Time      int64             `json:"time"`
		Messaging []json.RawMessage `json:"messaging"`
	}
	// The same kept HMACs as Baton's ingress: the peer is not made slower
	// than what a team would get from the messenger package.
	verifier := messenger.NewVerifier(secret, messenger.VerifyOptions{})
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
		env, err := messenger.ParseEnvelope(body)
		if err != nil {
			http.Error(w, "decode", http.StatusBadRequest)
			return
		}
		for _, en := range env.Entry {
			for _, ev := range en.Messaging {
				out, err := json.Marshal(struct {
					Object string  `json:"object"`
					Entry  []entry `json:"entry"`
				}{"page", []entry{{ID: string(en.ID), Time: en.Time, Messaging: []json.RawMessage{ev.Raw}}}})
				if err == nil {
					err = forward(r.Context(), client, botURL, secret, out)
				}
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
			}
		}
		_, _ = io.WriteString(w, "EVENT_RECEIVED")
	})
}

func forward(ctx context.Context, c *http.Client, url string, secret, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(messenger.HeaderSignature256, messenger.Sign(secret, body))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body) // so that the connection is reused
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("bot answered %d", resp.StatusCode)
	}
	return nil
}

// ServeGlue serves Glue on listen, forwarding to botURL with conns pooled
// connections, until ctx ends: the process `baton bench-glue`.
func ServeGlue(ctx context.Context, listen, botURL string, conns int) error {
	// Go's default of 2 idle connections per host halves a forwarder's
	// throughput at 64 in flight (PERFORMANCE-NOTES).
	tr := &http.Transport{MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return serveChild(ctx, listen, Glue([]byte(os.Getenv(lab.SecretEnv)), botURL, client, 1<<20))
}
