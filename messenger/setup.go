package messenger

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// The Graph calls of setting up a page: who a token belongs to, what it
// may do, and which webhooks an app gets. Baton's set-up commands make
// them; the orchestrator never does.

// CodeCallbackVerification is Meta's refusal of an app webhook
// subscription whose callback did not answer the verification handshake
// ("(#2200) Callback verification failed").
const CodeCallbackVerification = 2200

// FieldsForInstagram are the webhook fields of an Instagram professional
// account that Baton needs: Instagram's names for the Messenger fields of
// FieldsForConversationRouting. Instagram has no message_echoes (echoes
// come with messages) and no message_deliveries; reads are messaging_seen;
// referrals and handovers are singular. Sources: Meta's webhook events
// reference
// (https://developers.facebook.com/documentation/business-messaging/messenger-platform/webhooks/webhook-events:
// "For Instagram Messaging conversations, the message echo notifications
// are included with the message webhook field", "See messaging_seen for
// Instagram"), Instagram's webhook fields
// (https://developers.facebook.com/documentation/instagram-platform/webhooks/fields:
// messages, messaging_postbacks, messaging_referral, messaging_seen,
// message_reactions) and the Instagram webhook reference
// (https://developers.facebook.com/docs/graph-api/webhooks/reference/instagram:
// messaging_handover); standby and messaging_optins as for Messenger.
var FieldsForInstagram = []string{
	"messages", "messaging_postbacks", "messaging_referral", "messaging_handover", "standby",
	"messaging_seen", "message_reactions", "messaging_optins",
}

// Permissions a page token needs (debug_token's scopes): Messenger's
// (REFERENCE §3.4: pages_messaging to message and control threads,
// pages_manage_metadata to subscribe the app to the page) and Instagram's
// (https://developers.facebook.com/docs/messenger-platform/instagram/,
// "Requirements": instagram_basic, instagram_manage_messages and
// pages_manage_metadata).
var (
	ScopesForMessenger = []string{"pages_messaging", "pages_manage_metadata"}
	ScopesForInstagram = []string{"instagram_basic", "instagram_manage_messages", "pages_manage_metadata"}
)

// AppAccessToken is the app access token "{app-id}|{app-secret}" that the
// app-level calls (debug_token, subscriptions) take.
func AppAccessToken(appID ID, appSecret string) string { return string(appID) + "|" + appSecret }

// Node is a Graph object's id and name.
type Node struct {
	ID   ID     `json:"id"`
	Name string `json:"name,omitempty"`
}

// Node reads id and name of the object cred.PageID names ("me": the page
// the token belongs to).
func (c *Client) Node(ctx context.Context, cred Credentials) (Node, error) {
	var out Node
	q := url.Values{"fields": {"id,name"}}
	err := c.do(ctx, http.MethodGet, cred, "", q, nil, &out)
	return out, err
}

// TokenInfo is what debug_token tells of an access token.
type TokenInfo struct {
	IsValid bool `json:"is_valid"`
	AppID   ID   `json:"app_id"`
	// Type is PAGE for a page access token.
	Type string `json:"type"`
	// ProfileID is the page a page access token belongs to.
	ProfileID ID       `json:"profile_id"`
	Scopes    []string `json:"scopes"`
	ExpiresAt int64    `json:"expires_at"`
	// Error is why an invalid token is invalid.
	Error *Error `json:"error"`
}

// DebugToken inspects inputToken with an app access token
// (GET /debug_token, https://developers.facebook.com/docs/graph-api/reference/debug_token/).
// An invalid input token is an answer with IsValid false, not an error.
func (c *Client) DebugToken(ctx context.Context, appToken, inputToken string) (TokenInfo, error) {
	var out struct {
		Data TokenInfo `json:"data"`
	}
	q := url.Values{"input_token": {inputToken}}
	err := c.do(ctx, http.MethodGet, Credentials{PageID: "debug_token", AccessToken: appToken}, "", q, nil, &out)
	return out.Data, err
}

// AppSubscription is one object of an app's webhook configuration
// (/{app-id}/subscriptions): where Meta sends the object's webhooks and
// for which fields.
type AppSubscription struct {
	Object      string
	CallbackURL string
	Fields      []string
	Active      bool
	// VerifyToken is sent when setting a subscription; Meta never returns it.
	VerifyToken string
}

type appSubscriptionBody struct {
	Object      string `json:"object"`
	CallbackURL string `json:"callback_url"`
	Active      bool   `json:"active"`
	Fields      []struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	} `json:"fields"`
}

// AppSubscriptions reads the app's webhook configuration with its app
// access token (https://developers.facebook.com/docs/graph-api/reference/app/subscriptions/).
func (c *Client) AppSubscriptions(ctx context.Context, appID ID, appToken string) ([]AppSubscription, error) {
	var out struct {
		Data []appSubscriptionBody `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, Credentials{PageID: appID, AccessToken: appToken}, "subscriptions", nil, nil, &out); err != nil {
		return nil, err
	}
	subs := make([]AppSubscription, 0, len(out.Data))
	for _, d := range out.Data {
		s := AppSubscription{Object: d.Object, CallbackURL: d.CallbackURL, Active: d.Active}
		for _, f := range d.Fields {
			s.Fields = append(s.Fields, f.Name)
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// SetAppSubscription creates or changes the app's webhook configuration
// for s.Object. Meta verifies the callback with s.VerifyToken before it
// answers, and refuses with CodeCallbackVerification when the handshake
// fails.
func (c *Client) SetAppSubscription(ctx context.Context, appID ID, appToken string, s AppSubscription) error {
	if s.Object == "" || s.CallbackURL == "" || len(s.Fields) == 0 {
		return errors.New("messenger: an app subscription needs object, callback_url and fields")
	}
	// In the body, not the query: the verify token is a secret, and a
	// transport error prints the URL.
	body := map[string]string{
		"object":       s.Object,
		"callback_url": s.CallbackURL,
		"fields":       strings.Join(s.Fields, ","),
		"verify_token": s.VerifyToken,
	}
	var out successBody
	if err := c.do(ctx, http.MethodPost, Credentials{PageID: appID, AccessToken: appToken}, "subscriptions", nil, body, &out); err != nil {
		return err
	}
	return out.check("subscriptions")
}
