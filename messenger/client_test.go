package messenger

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// graphStub answers every request with status and body, counting calls.
func graphStub(t *testing.T, status int, body string) (*Client, *atomic.Int32, *http.Request) {
	t.Helper()
	var n atomic.Int32
	last := new(http.Request)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		*last = *r.Clone(context.Background())
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(ClientOptions{BaseURL: srv.URL, Version: "v21.0", Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c, &n, last
}

var cred = Credentials{AccessToken: "tok", AppSecret: "sec"}

// Every error body of fixtures/graph_responses.json decodes into *Error
// with its fields intact.
func TestClientDecodesEveryFixtureError(t *testing.T) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(loadFixture(t, "graph_responses.json"), &doc); err != nil {
		t.Fatal(err)
	}
	var cases int
	for endpoint, raw := range doc {
		var ep struct {
			Errors map[string]struct {
				HTTPStatus int             `json:"http_status"`
				Body       json.RawMessage `json:"body"`
			} `json:"errors"`
		}
		_ = json.Unmarshal(raw, &ep)
		for name, e := range ep.Errors {
			cases++
			t.Run(endpoint+"/"+name, func(t *testing.T) {
				var want ErrorEnvelope
				if err := json.Unmarshal(e.Body, &want); err != nil {
					t.Fatal(err)
				}
				c, _, _ := graphStub(t, e.HTTPStatus, string(e.Body))
				err := c.ReleaseThreadControl(context.Background(), cred, "1", "")
				var ge *Error
				if !errors.As(err, &ge) {
					t.Fatalf("error %T %v is not *Error", err, err)
				}
				w := want.Error
				if ge.Code != w.Code || ge.Subcode != w.Subcode || ge.Message != w.Message || ge.FBTraceID != w.FBTraceID || ge.Type != w.Type || ge.HTTPStatus != e.HTTPStatus {
					t.Fatalf("decoded %+v, want %+v (http %d)", ge, w, e.HTTPStatus)
				}
			})
		}
	}
	if cases < 20 {
		t.Fatalf("only %d error cases found in the fixture", cases)
	}
}

func TestErrorHelpers(t *testing.T) {
	mk := func(code, sub int) error { return &Error{Code: code, Subcode: sub} }
	tests := []struct {
		name string
		is   func(error) bool
		yes  []error
		no   []error
	}{
		{"not owner", IsNotOwner, []error{mk(10, 2018300)}, []error{mk(10, 2018278), mk(100, 2018300)}},
		{"outside window", IsOutsideWindow, []error{mk(10, 2018278)}, []error{mk(10, 2018300)}},
		{"rate limited", IsRateLimited, []error{mk(613, 0), mk(613, 2534040), mk(4, 0), mk(32, 0)}, []error{mk(100, 0)}},
		{"bad token", IsBadToken, []error{mk(190, 0), mk(190, 463)}, []error{mk(200, 0)}},
		{"user unavailable", IsUserUnavailable, []error{mk(551, 1545041)}, []error{mk(10, 2018108)}},
		{"transient", IsTransient, []error{mk(2, 0), &Error{Code: 100, IsTransient: true}}, []error{mk(100, 0)}},
	}
	for _, tt := range tests {
		for _, e := range tt.yes {
			if !tt.is(e) || !tt.is(wrap(e)) {
				t.Errorf("%s: %v not recognised", tt.name, e)
			}
		}
		for _, e := range append(tt.no, errors.New("plain"), nil) {
			if tt.is(e) {
				t.Errorf("%s: %v wrongly recognised", tt.name, e)
			}
		}
	}
}

func wrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestClientRetriesOnlyWhatIsSafe(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		status    int
		body      string
		call      func(c *Client) error
		wantCalls int32
	}{
		{"GET retried on 500", 500, `oops`, func(c *Client) error { _, err := c.ThreadOwner(ctx, cred, "1"); return err }, 3},
		{"GET retried when transient", 500, `{"error":{"message":"x","code":2,"is_transient":true}}`, func(c *Client) error { _, err := c.SubscribedApps(ctx, cred); return err }, 3},
		{"POST not retried on 500", 500, `oops`, func(c *Client) error { return c.PassThreadControl(ctx, cred, "1", "2", "") }, 1},
		{"POST not retried on transient", 500, `{"error":{"message":"x","code":2}}`, func(c *Client) error { return c.TakeThreadControl(ctx, cred, "1", "") }, 1},
		{"POST retried on rate limit", 400, `{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","code":613}}`, func(c *Client) error { return c.TakeThreadControl(ctx, cred, "1", "") }, 3},
		{"POST not retried on not owner", 400, `{"error":{"message":"x","code":10,"error_subcode":2018300}}`, func(c *Client) error { _, err := c.Send(ctx, cred, &SendRequest{}); return err }, 1},
		{"GET not retried on 400", 400, `{"error":{"message":"x","code":100}}`, func(c *Client) error { _, err := c.SecondaryReceivers(ctx, cred); return err }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, n, _ := graphStub(t, tt.status, tt.body)
			if err := tt.call(c); err == nil {
				t.Fatal("no error")
			}
			if got := n.Load(); got != tt.wantCalls {
				t.Fatalf("%d calls, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestClientUncertainOutcome(t *testing.T) {
	// A server that takes the request and never answers: the call may have
	// been applied.
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	c, _ := NewClient(ClientOptions{BaseURL: srv.URL, HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	err := c.PassThreadControl(context.Background(), cred, "1", "2", "")
	if !IsUncertain(err) {
		t.Fatalf("timeout after sending: IsUncertain(%v) = false", err)
	}

	if strings.Contains(err.Error(), cred.AccessToken+"&") || strings.Contains(err.Error(), "access_token=tok") {
		t.Fatalf("error shows the token: %v", err)
	}

	// Nothing listens: the request never left.
	dead, _ := NewClient(ClientOptions{BaseURL: "http://127.0.0.1:1", MaxAttempts: 1})
	err = dead.PassThreadControl(context.Background(), cred, "1", "2", "")
	if err == nil || IsUncertain(err) {
		t.Fatalf("connection refused: IsUncertain(%v) = true", err)
	}
	if strings.Contains(err.Error(), "access_token=tok") || strings.Contains(err.Error(), AppSecretProof("sec", "tok")) {
		t.Fatalf("error shows credentials: %v", err)
	}
}

func TestClientRequestShape(t *testing.T) {
	c, _, last := graphStub(t, 200, `{"success":true}`)
	var body []byte
	c.hc.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		body, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		return http.DefaultTransport.RoundTrip(r)
	})
	page := Credentials{PageID: "100", AccessToken: "tok", AppSecret: "sec"}
	if err := c.PassThreadControl(context.Background(), page, "7", PageInboxAppID, "why"); err != nil {
		t.Fatal(err)
	}
	if last.URL.Path != "/v21.0/100/pass_thread_control" || last.Method != http.MethodPost {
		t.Fatalf("called %s %s", last.Method, last.URL.Path)
	}
	q := last.URL.Query()
	if q.Get("access_token") != "tok" || q.Get("appsecret_proof") != AppSecretProof("sec", "tok") {
		t.Fatalf("auth query %v", q)
	}
	if string(body) != `{"recipient":{"id":"7"},"target_app_id":"263902037430900","metadata":"why"}` {
		t.Fatalf("body %s", body)
	}
	if err := c.ExtendThreadControl(context.Background(), cred, "7", 8*24*time.Hour); err == nil {
		t.Fatal("extend beyond 7 days accepted")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestClientSuccessShapes(t *testing.T) {
	ctx := context.Background()
	for _, body := range []string{`{"success":true}`, `{"success":"true"}`, `{"data":[{"thread_owner":{"app_id":"1","expiration":1718086400}}]}`} {
		c, _, _ := graphStub(t, 200, body)
		if err := c.TakeThreadControl(ctx, cred, "1", ""); err != nil {
			t.Errorf("%s: %v", body, err)
		}
	}
	for _, body := range []string{`{"success":false}`, `{}`} {
		c, _, _ := graphStub(t, 200, body)
		if err := c.TakeThreadControl(ctx, cred, "1", ""); err == nil {
			t.Errorf("%s: accepted", body)
		}
	}
	c, _, _ := graphStub(t, 200, `{"success":"true"}`)
	if err := c.Subscribe(ctx, cred, FieldsForConversationRouting); err != nil {
		t.Fatal(err)
	}
}

func TestThreadOwnerShapes(t *testing.T) {
	exp := time.Unix(1718086400, 0).UTC()
	tests := []struct {
		body string
		want ThreadOwner
	}{
		{`{"data":[{"thread_owner":{"app_id":"512345678901234","expiration":1718086400}}]}`, ThreadOwner{AppID: "512345678901234", Expires: exp}},
		{`{"data":[{"thread_owner":{"app_id":12345678910}}]}`, ThreadOwner{AppID: "12345678910"}},
		{`{"data":[{"thread_owner":{"expiration":1718086400}}]}`, ThreadOwner{Expires: exp}},
		{`{"data":[{"thread_owner":{"app_id":"1","expiration":1718086400000}}]}`, ThreadOwner{AppID: "1", Expires: exp}},
		{`{"data":[]}`, ThreadOwner{Idle: true}},
		{`{}`, ThreadOwner{Idle: true}},
	}
	for _, tt := range tests {
		c, _, last := graphStub(t, 200, tt.body)
		got, err := c.ThreadOwner(context.Background(), cred, "7")
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v", tt.body, got, err, tt.want)
		}
		if last.URL.Query().Get("recipient") != "7" {
			t.Errorf("recipient not a plain PSID: %v", last.URL.RawQuery)
		}
	}
}

func TestSend(t *testing.T) {
	c, _, last := graphStub(t, 200, `{"recipient_id":"7","message_id":"m_1"}`)
	res, err := c.Send(context.Background(), cred, &SendRequest{
		Recipient: Recipient{ID: "7"}, MessagingType: MessagingTypeResponse,
		Message:       &OutgoingMessage{Text: "hi", QuickReplies: []QuickReplyOption{{ContentType: "text", Title: "Yes", Payload: "Y"}}},
		ThreadControl: &ThreadControl{ControlType: "pass", AppID: PageInboxAppID},
	})
	if err != nil || res.MessageID != "m_1" || res.RecipientID != "7" {
		t.Fatalf("%+v %v", res, err)
	}
	if last.URL.Path != "/v21.0/me/messages" {
		t.Fatalf("path %s", last.URL.Path)
	}
}
