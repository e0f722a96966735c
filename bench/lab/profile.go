package lab

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// FetchProfile fetches a profile (profile, allocs) of d from Baton's admin
// listener and writes it to path; the returned channel yields the outcome.
func FetchProfile(ctx context.Context, adm, kind, path string, d time.Duration) <-chan error {
	out := make(chan error, 1)
	go func() {
		secs := max(1, int(d.Seconds()))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", adm, kind, secs), nil)
		if err != nil {
			out <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		client := &http.Client{Timeout: time.Duration(secs)*time.Second + time.Minute}
		resp, err := client.Do(req)
		if err != nil {
			out <- fmt.Errorf("profile: %w", err)
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			out <- fmt.Errorf("profile: %s", resp.Status)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			out <- err
			return
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			out <- fmt.Errorf("profile: %w", err)
			return
		}
		out <- f.Close()
	}()
	return out
}
