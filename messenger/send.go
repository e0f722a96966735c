package messenger

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// Messaging types of the Send API.
const (
	MessagingTypeResponse   = "RESPONSE"
	MessagingTypeUpdate     = "UPDATE"
	MessagingTypeMessageTag = "MESSAGE_TAG"
)

// Message tags. HUMAN_AGENT lets a person reply up to 7 days after the
// user's last message; the last three are retired (error 100) from
// 2026-04-27.
const (
	TagHumanAgent           = "HUMAN_AGENT"
	TagCustomerFeedback     = "CUSTOMER_FEEDBACK"
	TagAccountUpdate        = "ACCOUNT_UPDATE"
	TagConfirmedEventUpdate = "CONFIRMED_EVENT_UPDATE"
	TagPostPurchaseUpdate   = "POST_PURCHASE_UPDATE"
)

// RetiredTagsFrom is the day Meta started refusing ACCOUNT_UPDATE,
// CONFIRMED_EVENT_UPDATE and POST_PURCHASE_UPDATE with error 100.
var RetiredTagsFrom = time.Date(2026, 4, 27, 0, 0, 0, 0, time.UTC)

// IsRetiredTag reports whether Meta refuses tag at t.
func IsRetiredTag(tag string, t time.Time) bool {
	switch tag {
	case TagAccountUpdate, TagConfirmedEventUpdate, TagPostPurchaseUpdate:
		return !t.Before(RetiredTagsFrom)
	}
	return false
}

// SendRequest is the body of POST /{page}/messages.
type SendRequest struct {
	Recipient        Recipient        `json:"recipient"`
	MessagingType    string           `json:"messaging_type,omitempty"`
	Message          *OutgoingMessage `json:"message,omitempty"`
	SenderAction     string           `json:"sender_action,omitempty"` // typing_on, typing_off, mark_seen
	NotificationType string           `json:"notification_type,omitempty"`
	Tag              string           `json:"tag,omitempty"`
	PersonaID        string           `json:"persona_id,omitempty"`
	ReplyTo          *ReplyTo         `json:"reply_to,omitempty"`
	// ThreadControl sends and changes control in one call (Conversation
	// Routing only).
	ThreadControl *ThreadControl `json:"thread_control,omitempty"`
}

// OutgoingMessage is what a page sends: text or one attachment, with quick
// replies and metadata that comes back in the echo.
type OutgoingMessage struct {
	Text         string              `json:"text,omitempty"`
	Attachment   *OutgoingAttachment `json:"attachment,omitempty"`
	QuickReplies []QuickReplyOption  `json:"quick_replies,omitempty"`
	Metadata     string              `json:"metadata,omitempty"`
}

// OutgoingAttachment is an image, audio, video, file or template. Payload is
// kept raw because each template has its own shape.
type OutgoingAttachment struct {
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// QuickReplyOption is one button of a quick-reply row.
type QuickReplyOption struct {
	ContentType string `json:"content_type"` // text, user_phone_number, user_email
	Title       string `json:"title,omitempty"`
	Payload     string `json:"payload,omitempty"`
	ImageURL    string `json:"image_url,omitempty"`
}

// ThreadControl is the Send API's control change: "pass" (to AppID, or the
// default app when empty) or "release".
type ThreadControl struct {
	ControlType string `json:"control_type,omitempty"`
	AppID       ID     `json:"app_id,omitempty"`
}

// SendResponse is the Send API's success body.
type SendResponse struct {
	RecipientID ID     `json:"recipient_id,omitempty"`
	MessageID   string `json:"message_id,omitempty"`
}

// Send sends a message or sender action. A send is not safe to repeat once
// it may have reached Meta, so it is retried only when refused unapplied.
func (c *Client) Send(ctx context.Context, cred Credentials, req *SendRequest) (*SendResponse, error) {
	var out SendResponse
	if err := c.do(ctx, http.MethodPost, cred, "messages", nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
