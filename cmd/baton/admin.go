package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// adminClient calls a running Baton's admin API with the admin token:
// what baton threads, erase and backup share.
type adminClient struct {
	base  string // the -admin URL, without a trailing slash
	token string
}

// adminFlag adds the -admin flag of the commands that talk to the admin
// API.
func adminFlag(fs *flag.FlagSet) *string {
	return fs.String("admin", envOr("BATON_ADMIN_URL", "http://127.0.0.1:8081"), "admin API URL (BATON_ADMIN_URL)")
}

// newAdminClient is a client of the admin API at base, with the token in
// BATON_ADMIN_TOKEN (never a flag: flags show in ps).
func newAdminClient(base string) (*adminClient, error) {
	token := os.Getenv("BATON_ADMIN_TOKEN")
	if token == "" {
		return nil, fmt.Errorf("%w: set BATON_ADMIN_TOKEN to the admin token", errUsage)
	}
	return &adminClient{base: strings.TrimSuffix(base, "/"), token: token}, nil
}

// open makes one call and returns the answer when it is 200 OK; any other
// status is an error with the body. A timeout of 0 leaves the end to ctx
// (a backup takes as long as its file does).
func (c *adminClient) open(ctx context.Context, method, path string, timeout time.Duration) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, fmt.Errorf("admin API answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return resp, nil
}

// call makes one call and decodes its JSON answer into out.
func (c *adminClient) call(ctx context.Context, method, path string, timeout time.Duration, out any) error {
	resp, err := c.open(ctx, method, path, timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err == nil {
		err = json.Unmarshal(body, out)
	}
	if err != nil {
		return fmt.Errorf("admin API: %s %s: %w", method, path, err)
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
