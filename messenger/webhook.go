package messenger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// ObjectPage is the `object` of every Messenger webhook body.
const ObjectPage = "page"

// ObjectInstagram is the `object` of an Instagram messaging webhook body,
// whose entry ids are Instagram professional account ids. ParseEnvelope
// refuses it; ParseWebhook accepts it.
const ObjectInstagram = "instagram"

// PageInboxAppID is the app id of Meta's Page Inbox, the human-agent inbox
// every Page has. Its replies arrive as echoes with this app_id.
const PageInboxAppID ID = "263902037430900"

// InstagramInboxAppID is the app id of Instagram's inbox, which plays the
// Page Inbox's part for an Instagram professional account.
const InstagramInboxAppID ID = "1217981644879628"

// Envelope is the body of one webhook POST. It may batch several entries,
// for one Page or several; iterate over all of them. Object is ObjectPage
// for Messenger and ObjectInstagram for Instagram (ParseWebhook only).
type Envelope struct {
	Object string  `json:"object"`
	Entry  []Entry `json:"entry"`
}

// Entry holds the events of one Page. An entry carries Messaging when the
// receiving app owns the thread (or the event is not routed) and Standby
// when it does not.
type Entry struct {
	ID        ID      `json:"id"`
	Time      int64   `json:"time"` // epoch milliseconds
	Messaging []Event `json:"messaging,omitempty"`
	Standby   []Event `json:"standby,omitempty"`
}

// Channel says on which list of an entry an event arrived.
type Channel string

// The two channels an event can arrive on.
const (
	ChannelMessaging Channel = "messaging"
	ChannelStandby   Channel = "standby"
)

// Party is the sender or recipient of an event: a person (PSID) or a Page.
type Party struct {
	ID      ID     `json:"id,omitempty"`
	UserRef string `json:"user_ref,omitempty"`
}

// Event is one item of entry.messaging or entry.standby. Exactly one of the
// pointer fields is set for a known event; unknown keys are ignored, and Raw
// keeps the event's bytes exactly as they arrived so that it can be
// forwarded unchanged.
type Event struct {
	Sender    *Party `json:"sender,omitempty"`
	Recipient Party  `json:"recipient"`
	Timestamp int64  `json:"timestamp,omitempty"` // epoch milliseconds

	Message              *Message              `json:"message,omitempty"`
	Postback             *Postback             `json:"postback,omitempty"`
	Referral             *Referral             `json:"referral,omitempty"`
	Optin                *Optin                `json:"optin,omitempty"`
	Read                 *Read                 `json:"read,omitempty"`
	Delivery             *Delivery             `json:"delivery,omitempty"`
	Reaction             *Reaction             `json:"reaction,omitempty"`
	PassThreadControl    *PassThreadControl    `json:"pass_thread_control,omitempty"`
	TakeThreadControl    *TakeThreadControl    `json:"take_thread_control,omitempty"`
	RequestThreadControl *RequestThreadControl `json:"request_thread_control,omitempty"`
	AppRoles             map[ID][]string       `json:"app_roles,omitempty"`
	PolicyEnforcement    *PolicyEnforcement    `json:"policy_enforcement,omitempty"`

	// Raw is the event as received; nil for events built in code.
	Raw json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the event and keeps a copy of its raw bytes.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event // no methods: avoids recursion
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = Event(p)
	e.Raw = append(json.RawMessage(nil), b...)
	return nil
}

// UnmarshalJSONFrom is UnmarshalJSON for ParseEnvelope's streaming decoder:
// it reads the event's bytes twice (to find and keep them, then to decode
// them) where encoding/json reads them four times.
func (e *Event) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	raw, err := dec.ReadValue()
	if err != nil {
		return err
	}
	type plain Event // no methods: avoids recursion
	var p plain
	if err := jsonv2.Unmarshal(raw, &p, dec.Options()); err != nil {
		return err
	}
	*e = Event(p)
	e.Raw = json.RawMessage(bytes.Clone(raw))
	return nil
}

// Kind names what an event is, one word per webhook event type.
type Kind string

// The event kinds of REFERENCE §2. KindUnknown is an event with none of the
// known keys: forwarded, never interpreted.
const (
	KindMessage              Kind = "message"
	KindEcho                 Kind = "message_echo"
	KindPostback             Kind = "postback"
	KindReferral             Kind = "referral"
	KindOptin                Kind = "optin"
	KindRead                 Kind = "read"
	KindDelivery             Kind = "delivery"
	KindReaction             Kind = "reaction"
	KindPassThreadControl    Kind = "pass_thread_control"
	KindTakeThreadControl    Kind = "take_thread_control"
	KindRequestThreadControl Kind = "request_thread_control"
	KindAppRoles             Kind = "app_roles"
	KindPolicyEnforcement    Kind = "policy_enforcement"
	KindUnknown              Kind = "unknown"
)

// Kind classifies the event by the key it carries.
func (e *Event) Kind() Kind {
	switch {
	case e.Message != nil && e.Message.IsEcho:
		return KindEcho
	case e.Message != nil:
		return KindMessage
	case e.Postback != nil:
		return KindPostback
	case e.Referral != nil:
		return KindReferral
	case e.Optin != nil:
		return KindOptin
	case e.Read != nil:
		return KindRead
	case e.Delivery != nil:
		return KindDelivery
	case e.Reaction != nil:
		return KindReaction
	case e.PassThreadControl != nil:
		return KindPassThreadControl
	case e.TakeThreadControl != nil:
		return KindTakeThreadControl
	case e.RequestThreadControl != nil:
		return KindRequestThreadControl
	case e.AppRoles != nil:
		return KindAppRoles
	case e.PolicyEnforcement != nil:
		return KindPolicyEnforcement
	}
	return KindUnknown
}

// IsHandover reports whether the event is one of the messaging_handovers
// events that move thread control.
func (e *Event) IsHandover() bool {
	switch e.Kind() {
	case KindPassThreadControl, KindTakeThreadControl, KindRequestThreadControl, KindAppRoles:
		return true
	}
	return false
}

// UserID returns the PSID of the person in the thread the event belongs to.
// Echoes are sent by the Page to the person, so their person is the
// recipient; app_roles and policy_enforcement have no person and return "".
func (e *Event) UserID() ID {
	if e.Kind() == KindEcho {
		return e.Recipient.ID
	}
	if e.Sender == nil {
		return ""
	}
	return e.Sender.ID
}

// Message is a message from a person, or an echo of a message the Page sent
// (IsEcho, with the sending app's AppID and the sender's Metadata).
type Message struct {
	Mid    string `json:"mid,omitempty"`
	Text   string `json:"text,omitempty"`
	IsEcho bool   `json:"is_echo,omitempty"`
	AppID  ID     `json:"app_id,omitempty"`
	// AIGenerated marks an echo of a reply Meta AI wrote in the Page
	// Inbox (REFERENCE §0.1, from a field report).
	AIGenerated bool         `json:"ai_generated,omitempty"`
	Metadata    string       `json:"metadata,omitempty"`
	QuickReply  *QuickReply  `json:"quick_reply,omitempty"`
	ReplyTo     *ReplyTo     `json:"reply_to,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	Referral    *Referral    `json:"referral,omitempty"`
	Commands    []Command    `json:"commands,omitempty"`
	IsDeleted   bool         `json:"is_deleted,omitempty"`
}

// QuickReply is the payload of the quick reply a person tapped.
type QuickReply struct {
	Payload string `json:"payload"`
}

// ReplyTo names the message a person replied to.
type ReplyTo struct {
	Mid         string `json:"mid"`
	IsSelfReply bool   `json:"is_self_reply,omitempty"`
}

// Command is a bot command a person chose from the composer menu.
type Command struct {
	Name string `json:"name"`
}

// Attachment is one file, sticker, location or template in a message.
type Attachment struct {
	Type    string            `json:"type"`
	Payload AttachmentPayload `json:"payload"`
}

// AttachmentPayload holds the fields of the attachment types people send.
type AttachmentPayload struct {
	URL         string       `json:"url,omitempty"`
	Title       string       `json:"title,omitempty"`
	StickerID   ID           `json:"sticker_id,omitempty"`
	Coordinates *Coordinates `json:"coordinates,omitempty"`
}

// Coordinates of a shared location.
type Coordinates struct {
	Lat  float64 `json:"lat"`
	Long float64 `json:"long"`
}

// Postback is a tap on a button. On the standby channel Payload is absent:
// only the app that sent the button gets it.
type Postback struct {
	Title    string    `json:"title,omitempty"`
	Payload  string    `json:"payload,omitempty"`
	Mid      string    `json:"mid,omitempty"`
	Referral *Referral `json:"referral,omitempty"`
}

// Referral tells how a person reached the thread: an m.me link with a ref
// (source SHORTLINK) or an ad (source ADS).
type Referral struct {
	Ref            string          `json:"ref,omitempty"`
	Source         string          `json:"source,omitempty"`
	Type           string          `json:"type,omitempty"`
	AdID           ID              `json:"ad_id,omitempty"`
	AdsContextData *AdsContextData `json:"ads_context_data,omitempty"`
	RefererURI     string          `json:"referer_uri,omitempty"`
}

// AdsContextData describes the ad a person came from.
type AdsContextData struct {
	AdTitle   string `json:"ad_title,omitempty"`
	PhotoURL  string `json:"photo_url,omitempty"`
	VideoURL  string `json:"video_url,omitempty"`
	PostID    string `json:"post_id,omitempty"`
	ProductID string `json:"product_id,omitempty"`
	FlowID    string `json:"flow_id,omitempty"`
}

// Optin is a person's consent: a Send-to-Messenger plugin click (Ref), a
// one-time notification (Type one_time_notif_req with OneTimeNotifToken) or
// a recurring notification subscription (Type notification_messages).
type Optin struct {
	Type                         string `json:"type,omitempty"`
	Ref                          string `json:"ref,omitempty"`
	UserRef                      string `json:"user_ref,omitempty"`
	Payload                      string `json:"payload,omitempty"`
	Title                        string `json:"title,omitempty"`
	OneTimeNotifToken            string `json:"one_time_notif_token,omitempty"`
	NotificationMessagesToken    string `json:"notification_messages_token,omitempty"`
	TokenExpiryTimestamp         int64  `json:"token_expiry_timestamp,omitempty"`
	UserTokenStatus              string `json:"user_token_status,omitempty"`
	NotificationMessagesStatus   string `json:"notification_messages_status,omitempty"`
	NotificationMessagesTimezone string `json:"notification_messages_timezone,omitempty"`
}

// OptinOneTimeNotif is the Optin.Type of a one-time notification opt-in.
const OptinOneTimeNotif = "one_time_notif_req"

// Read says the person has read every message sent at or before Watermark.
type Read struct {
	Watermark int64 `json:"watermark"`
}

// Delivery says messages were delivered; Mids may be absent.
type Delivery struct {
	Mids      []string `json:"mids,omitempty"`
	Watermark int64    `json:"watermark"`
}

// Reaction is a person reacting to a message, or removing a reaction.
type Reaction struct {
	Mid      string `json:"mid"`
	Action   string `json:"action"` // react | unreact
	Reaction string `json:"reaction,omitempty"`
	Emoji    string `json:"emoji,omitempty"`
}

// PassThreadControl tells the new owner it was handed the thread. An empty
// PreviousOwnerAppID (JSON null) means the thread was idle.
type PassThreadControl struct {
	PreviousOwnerAppID ID     `json:"previous_owner_app_id"`
	NewOwnerAppID      ID     `json:"new_owner_app_id"`
	Metadata           string `json:"metadata,omitempty"`
}

// TakeThreadControl tells the previous owner that another app took the
// thread. An empty PreviousOwnerAppID means the thread was idle.
type TakeThreadControl struct {
	PreviousOwnerAppID ID     `json:"previous_owner_app_id"`
	NewOwnerAppID      ID     `json:"new_owner_app_id"`
	Metadata           string `json:"metadata,omitempty"`
}

// RequestThreadControl asks the current owner to hand the thread over.
type RequestThreadControl struct {
	RequestedOwnerAppID ID     `json:"requested_owner_app_id"`
	Metadata            string `json:"metadata,omitempty"`
}

// PolicyEnforcement tells an app it was warned, blocked or unblocked.
type PolicyEnforcement struct {
	Action string `json:"action"`
	Reason string `json:"reason,omitempty"`
}

// Errors returned by ParseEnvelope for bodies that are signed but unusable.
var (
	ErrNotPage    = errors.New("messenger: webhook object is not \"page\"")
	ErrNoEntries  = errors.New("messenger: webhook has no entries")
	ErrNoPageID   = errors.New("messenger: webhook entry has no page id")
	ErrMalformed  = errors.New("messenger: malformed webhook body")
	ErrEmptyEvent = errors.New("messenger: webhook event has no recipient")
	// ErrUnknownObject is ParseWebhook's ErrNotPage: the object is neither
	// "page" nor "instagram".
	ErrUnknownObject = errors.New("messenger: webhook object is not \"page\" or \"instagram\"")
)

// ParseEnvelope decodes a webhook body (after its signature was checked on
// these same bytes) and checks the shape every Messenger webhook has.
// Any other object, Instagram's included, is ErrNotPage.
func ParseEnvelope(body []byte) (*Envelope, error) {
	return parseEnvelope(body, false)
}

// ParseWebhook is ParseEnvelope for an endpoint that takes Messenger and
// Instagram webhooks alike: it accepts the objects "page" and "instagram"
// (ErrUnknownObject otherwise), and the Envelope's Object tells which it
// got. Instagram's entries, events and thread-control events have
// Messenger's shapes; an entry id is then the Instagram account id.
func ParseWebhook(body []byte) (*Envelope, error) {
	return parseEnvelope(body, true)
}

// IsInstagram reports whether the webhook came from Instagram.
func (env *Envelope) IsInstagram() bool { return env.Object == ObjectInstagram }

func parseEnvelope(body []byte, instagram bool) (*Envelope, error) {
	var env Envelope
	if err := jsonv2.Unmarshal(body, &env, decodeOptions); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	switch {
	case env.Object == ObjectPage:
	case !instagram:
		return nil, fmt.Errorf("%w: got %q", ErrNotPage, env.Object)
	case env.Object != ObjectInstagram:
		return nil, fmt.Errorf("%w: got %q", ErrUnknownObject, env.Object)
	}
	if len(env.Entry) == 0 {
		return nil, ErrNoEntries
	}
	for i, e := range env.Entry {
		if e.ID == "" {
			return nil, fmt.Errorf("entry %d: %w", i, ErrNoPageID)
		}
	}
	return &env, nil
}

// decodeOptions give ParseEnvelope encoding/json's semantics (names matched
// without regard to case, duplicate names and invalid UTF-8 accepted) on
// the single-pass decoder of encoding/json/v2, here from its module until
// Baton moves to a Go that has it without an experiment flag.
var decodeOptions = jsonv1.DefaultOptionsV1()

// Each calls fn for every event of every entry in the order Meta sent
// them, with the channel it arrived on.
func (env *Envelope) Each(fn func(entry *Entry, ch Channel, ev *Event)) {
	for i := range env.Entry {
		en := &env.Entry[i]
		for j := range en.Messaging {
			fn(en, ChannelMessaging, &en.Messaging[j])
		}
		for j := range en.Standby {
			fn(en, ChannelStandby, &en.Standby[j])
		}
	}
}
