package messenger

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults for ClientOptions.
const (
	DefaultGraphURL     = "https://graph.facebook.com"
	DefaultGraphVersion = "v21.0"
	defaultTimeout      = 10 * time.Second
	defaultAttempts     = 3
	defaultBackoff      = 200 * time.Millisecond
	maxResponseBytes    = 1 << 20
)

// ClientOptions configures a Client. The zero value talks to Meta.
type ClientOptions struct {
	// BaseURL is the Graph origin, e.g. the fake platform's URL in tests.
	BaseURL string
	// Version is the path segment before every edge, such as "v21.0".
	Version string
	// HTTPClient sends the requests; it defaults to one with a 10 s timeout.
	HTTPClient *http.Client
	// MaxAttempts bounds how often a call that is safe to repeat is sent
	// (default 3; 1 disables retries).
	MaxAttempts int
	// Backoff is the first pause between attempts; it doubles each time,
	// with jitter.
	Backoff time.Duration
}

// Client calls the Graph API on behalf of apps. It holds no credentials:
// each call names the app and page it acts for, so one Client serves every
// app Baton hosts.
type Client struct {
	base     *url.URL
	version  string
	hc       *http.Client
	attempts int
	backoff  time.Duration
}

// NewClient returns a Client for opts.
func NewClient(opts ClientOptions) (*Client, error) {
	raw := opts.BaseURL
	if raw == "" {
		raw = DefaultGraphURL
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("messenger: graph base url %q is not an absolute URL", raw)
	}
	c := &Client{base: u, version: opts.Version, hc: opts.HTTPClient, attempts: opts.MaxAttempts, backoff: opts.Backoff}
	if c.version == "" {
		c.version = DefaultGraphVersion
	}
	c.version = strings.Trim(c.version, "/")
	if c.hc == nil {
		c.hc = &http.Client{Timeout: defaultTimeout}
	}
	if c.attempts <= 0 {
		c.attempts = defaultAttempts
	}
	if c.backoff <= 0 {
		c.backoff = defaultBackoff
	}
	return c, nil
}

// Credentials name who makes a call: a Page access token, which Meta maps to
// one (page, app) pair, and the app's secret for appsecret_proof.
type Credentials struct {
	// PageID is the node the call is made on; empty means "me", the page
	// that owns the token.
	PageID ID
	// AccessToken is the page access token of the calling app.
	AccessToken string
	// AppSecret, when known, adds appsecret_proof to every call.
	AppSecret string
}

// AppSecretProof returns HMAC-SHA256(key = app secret, message = token) in
// hex, which Meta requires when an app turns on "Require App Secret".
func AppSecretProof(appSecret, accessToken string) string {
	m := hmac.New(sha256.New, []byte(appSecret))
	m.Write([]byte(accessToken))
	return hex.EncodeToString(m.Sum(nil))
}

// Recipient names the person a call is about.
type Recipient struct {
	ID                        ID     `json:"id,omitempty"`
	UserRef                   string `json:"user_ref,omitempty"`
	OneTimeNotifToken         string `json:"one_time_notif_token,omitempty"`
	NotificationMessagesToken string `json:"notification_messages_token,omitempty"`
}

type threadControlBody struct {
	Recipient   Recipient `json:"recipient"`
	TargetAppID ID        `json:"target_app_id,omitempty"`
	Metadata    string    `json:"metadata,omitempty"`
	Duration    int64     `json:"duration,omitempty"`
}

// PassThreadControl hands the thread with psid to targetAppID. An empty
// target means the page's default app (Conversation Routing only).
func (c *Client) PassThreadControl(ctx context.Context, cred Credentials, psid, targetAppID ID, metadata string) error {
	body := threadControlBody{Recipient: Recipient{ID: psid}, TargetAppID: targetAppID, Metadata: metadata}
	return c.postSuccess(ctx, cred, "pass_thread_control", body)
}

// TakeThreadControl takes the thread for the calling app.
func (c *Client) TakeThreadControl(ctx context.Context, cred Credentials, psid ID, metadata string) error {
	return c.postSuccess(ctx, cred, "take_thread_control", threadControlBody{Recipient: Recipient{ID: psid}, Metadata: metadata})
}

// RequestThreadControl asks the owner for the thread (zero-config pages).
// Success means the request was accepted, not that control was granted.
func (c *Client) RequestThreadControl(ctx context.Context, cred Credentials, psid ID, metadata string) error {
	return c.postSuccess(ctx, cred, "request_thread_control", threadControlBody{Recipient: Recipient{ID: psid}, Metadata: metadata})
}

// ReleaseThreadControl makes the thread idle; only the owner may.
func (c *Client) ReleaseThreadControl(ctx context.Context, cred Credentials, psid ID, metadata string) error {
	return c.postSuccess(ctx, cred, "release_thread_control", threadControlBody{Recipient: Recipient{ID: psid}, Metadata: metadata})
}

// MaxExtend is the longest extend_thread_control accepts.
const MaxExtend = 7 * 24 * time.Hour

// ExtendThreadControl keeps the caller's control for d (at most 7 days)
// beyond the 24-hour inactivity expiry.
func (c *Client) ExtendThreadControl(ctx context.Context, cred Credentials, psid ID, d time.Duration) error {
	secs := int64(d / time.Second)
	if secs <= 0 || d > MaxExtend {
		return fmt.Errorf("messenger: extend duration %s out of range (1s to 7 days)", d)
	}
	return c.postSuccess(ctx, cred, "extend_thread_control", threadControlBody{Recipient: Recipient{ID: psid}, Duration: secs})
}

// ThreadOwner is the answer of GET thread_owner.
type ThreadOwner struct {
	// AppID is the owner; empty when the thread is idle or when Meta hides
	// the owner from the caller.
	AppID ID
	// Expires is when control lapses; zero when not given.
	Expires time.Time
	// Idle is true when Meta answered with no owner at all.
	Idle bool
}

type threadOwnerBody struct {
	Data []struct {
		ThreadOwner struct {
			AppID      ID    `json:"app_id"`
			Expiration int64 `json:"expiration"`
		} `json:"thread_owner"`
	} `json:"data"`
}

// ThreadOwner asks Meta who controls the thread with psid. It understands
// every documented shape: owner with or without expiration, expiration
// only (another app owns it), and an empty answer (idle).
func (c *Client) ThreadOwner(ctx context.Context, cred Credentials, psid ID) (ThreadOwner, error) {
	var out threadOwnerBody
	q := url.Values{"recipient": {string(psid)}}
	if err := c.do(ctx, http.MethodGet, cred, "thread_owner", q, nil, &out); err != nil {
		return ThreadOwner{}, err
	}
	if len(out.Data) == 0 {
		return ThreadOwner{Idle: true}, nil
	}
	to := out.Data[0].ThreadOwner
	return ThreadOwner{AppID: to.AppID, Expires: unixAuto(to.Expiration)}, nil
}

// unixAuto reads an epoch timestamp in seconds, or milliseconds when it is
// too large to be seconds: the unit of thread_owner.expiration is not
// documented.
func unixAuto(n int64) time.Time {
	switch {
	case n == 0:
		return time.Time{}
	case n > 1e11:
		return time.UnixMilli(n).UTC()
	default:
		return time.Unix(n, 0).UTC()
	}
}

// AppInfo names an app connected to a page.
type AppInfo struct {
	ID   ID     `json:"id"`
	Name string `json:"name,omitempty"`
}

// SecondaryReceivers lists the page's secondary receivers (legacy
// Handover Protocol; only the primary receiver may ask).
func (c *Client) SecondaryReceivers(ctx context.Context, cred Credentials) ([]AppInfo, error) {
	var out struct {
		Data []AppInfo `json:"data"`
	}
	q := url.Values{"fields": {"id,name"}}
	if err := c.do(ctx, http.MethodGet, cred, "secondary_receivers", q, nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// SubscribedApp is one app subscribed to a page's webhooks.
type SubscribedApp struct {
	ID               ID       `json:"id"`
	Name             string   `json:"name,omitempty"`
	Category         string   `json:"category,omitempty"`
	Link             string   `json:"link,omitempty"`
	SubscribedFields []string `json:"subscribed_fields,omitempty"`
}

// SubscribedApps lists the apps subscribed to the page.
func (c *Client) SubscribedApps(ctx context.Context, cred Credentials) ([]SubscribedApp, error) {
	var out struct {
		Data []SubscribedApp `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, cred, "subscribed_apps", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Data, nil
}

// FieldsForConversationRouting are the webhook fields every app on a
// Conversation Routing page must subscribe to, plus the ones Baton uses.
var FieldsForConversationRouting = []string{
	"messages", "messaging_postbacks", "messaging_referrals", "messaging_handovers", "standby",
	"message_echoes", "message_reads", "message_deliveries", "messaging_optins",
}

// Subscribe subscribes the calling app to the page's webhooks for fields.
func (c *Client) Subscribe(ctx context.Context, cred Credentials, fields []string) error {
	q := url.Values{"subscribed_fields": {strings.Join(fields, ",")}}
	var out successBody
	if err := c.do(ctx, http.MethodPost, cred, "subscribed_apps", q, nil, &out); err != nil {
		return err
	}
	return out.check("subscribed_apps")
}

// FeatureStatus is the page's messaging_feature_status.
type FeatureStatus struct {
	HopV2        bool `json:"hop_v2"`
	MsgrMultiApp bool `json:"msgr_multi_app"` // Conversation Routing on Messenger
	IGMultiApp   bool `json:"ig_multi_app"`
}

// FeatureStatus tells whether Conversation Routing is on for the page.
func (c *Client) FeatureStatus(ctx context.Context, cred Credentials) (FeatureStatus, error) {
	var out struct {
		Status FeatureStatus `json:"messaging_feature_status"`
	}
	q := url.Values{"fields": {"messaging_feature_status"}}
	err := c.do(ctx, http.MethodGet, cred, "", q, nil, &out)
	return out.Status, err
}

// successBody is the answer of the thread-control edges: {"success": true},
// "true" as a string in some documented samples, or for take the
// thread_owner shape of an older doc page. All of them mean success.
type successBody struct {
	Success json.RawMessage   `json:"success"`
	Data    []json.RawMessage `json:"data"`
}

func (s *successBody) check(op string) error {
	switch strings.Trim(string(s.Success), `"`) {
	case "true":
		return nil
	case "":
		if s.Data != nil {
			return nil
		}
		return &TransportError{Op: op, Sent: true, Err: errors.New("answer has no success field")}
	}
	return &TransportError{Op: op, Sent: true, Err: fmt.Errorf("answer says success=%s", s.Success)}
}

func (c *Client) postSuccess(ctx context.Context, cred Credentials, edge string, body any) error {
	var out successBody
	if err := c.do(ctx, http.MethodPost, cred, edge, nil, body, &out); err != nil {
		return err
	}
	return out.check(edge)
}

// do performs one Graph call with bounded retries for what is safe to
// repeat (see retryable), decoding a 2xx into out and anything else into
// *Error or *TransportError.
func (c *Client) do(ctx context.Context, method string, cred Credentials, edge string, q url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("messenger: encode %s: %w", edge, err)
		}
	}
	op := method + " " + edge
	delay := c.backoff
	var err error
	for attempt := 1; ; attempt++ {
		err = c.once(ctx, method, cred, edge, q, payload, out)
		if err == nil || attempt >= c.attempts || !retryable(method, err) || ctx.Err() != nil {
			break
		}
		// Full jitter keeps apps that failed together from retrying together.
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w (after %d attempts, last: %w)", op, ctx.Err(), attempt, err)
		case <-t.C:
		}
		delay *= 2
	}
	return err
}

// newRequest builds a Graph request for the caller: the path, the access
// token and appsecret_proof.
func (c *Client) newRequest(ctx context.Context, method string, cred Credentials, edge string, q url.Values, payload []byte) (*http.Request, error) {
	return c.newRequestOf(ctx, method, cred, edge, q, "application/json", payload)
}

// newRequestOf is newRequest with a body of any content type.
func (c *Client) newRequestOf(ctx context.Context, method string, cred Credentials, edge string, q url.Values, contentType string, payload []byte) (*http.Request, error) {
	u := *c.base
	node := string(cred.PageID)
	if node == "" {
		node = "me"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/" + c.version + "/" + node
	if edge != "" {
		u.Path += "/" + edge
	}
	v := url.Values{}
	for k, vs := range q {
		v[k] = vs
	}
	v.Set("access_token", cred.AccessToken)
	if cred.AppSecret != "" {
		v.Set("appsecret_proof", AppSecretProof(cred.AppSecret, cred.AccessToken))
	}
	u.RawQuery = v.Encode()
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", contentType)
	}
	return req, nil
}

// send performs req, hiding the token from transport errors.
func (c *Client) send(op string, req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		// *url.Error prints the URL, whose query holds the access token.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = redact(ue.URL)
		}
		return nil, &TransportError{Op: op, Sent: mayHaveBeenSent(err), Err: err}
	}
	return resp, nil
}

func (c *Client) once(ctx context.Context, method string, cred Credentials, edge string, q url.Values, payload []byte, out any) error {
	op := method + " " + edge
	req, err := c.newRequest(ctx, method, cred, edge, q, payload)
	if err != nil {
		return &TransportError{Op: op, Err: err}
	}
	resp, err := c.send(op, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return &TransportError{Op: op, Sent: true, HTTPStatus: resp.StatusCode, Err: fmt.Errorf("read answer: %w", err)}
	}
	if resp.StatusCode/100 != 2 {
		var env ErrorEnvelope
		if json.Unmarshal(raw, &env) == nil && env.Error != nil {
			env.Error.HTTPStatus = resp.StatusCode
			return env.Error
		}
		return &TransportError{Op: op, Sent: true, HTTPStatus: resp.StatusCode, Err: fmt.Errorf("answer without error envelope: %.200q", raw)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &TransportError{Op: op, Sent: true, HTTPStatus: resp.StatusCode, Err: fmt.Errorf("decode answer: %w", err)}
	}
	return nil
}

// Raw makes one call as it is and returns Meta's status and body
// unchanged, for a proxy that must answer exactly what Meta answered. It is
// not retried. q and payload must not carry credentials: cred's are added.
func (c *Client) Raw(ctx context.Context, method string, cred Credentials, edge string, q url.Values, payload []byte) (int, []byte, error) {
	return c.RawBody(ctx, method, cred, edge, q, "application/json", payload)
}

// RawBody is Raw with a body of the given content type, such as a
// multipart/form-data attachment upload.
func (c *Client) RawBody(ctx context.Context, method string, cred Credentials, edge string, q url.Values, contentType string, payload []byte) (int, []byte, error) {
	op := method + " " + edge
	req, err := c.newRequestOf(ctx, method, cred, edge, q, contentType, payload)
	if err != nil {
		return 0, nil, &TransportError{Op: op, Err: err}
	}
	resp, err := c.send(op, req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, nil, &TransportError{Op: op, Sent: true, HTTPStatus: resp.StatusCode, Err: fmt.Errorf("read answer: %w", err)}
	}
	return resp.StatusCode, raw, nil
}

// redact hides the credentials in a Graph URL's query.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<graph url>"
	}
	q := u.Query()
	for _, k := range []string{"access_token", "appsecret_proof", "input_token"} {
		if q.Has(k) {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// mayHaveBeenSent tells a failure before the request left (dial refused,
// DNS) from one after (timeout, reset), which may have been applied.
func mayHaveBeenSent(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var dns *net.DNSError
	return !errors.As(err, &dns)
}
