// Package batonapi is the inbox's client of Baton: the bot API under /v1
// and the Graph-compatible endpoint under /graph, called as the inbox's
// hosted app with its Baton token. Refusals come back as *Error with
// Baton's (or Meta's) words; an unreachable Baton as ErrUnreachable.
package batonapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Client calls Baton as one app.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New builds a client of the Baton at base (its public URL) with the
// app's token.
func New(base, token string, c *http.Client) *Client {
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, http: c}
}

// Error is Baton's (or Meta's, through /graph) refusal.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrUnreachable is a call that got no answer from Baton.
var ErrUnreachable = errors.New("cannot reach Baton")

// StatusOf is the HTTP status Baton answered with, 0 when it did not.
func StatusOf(err error) int {
	var be *Error
	if errors.As(err, &be) {
		return be.Status
	}
	return 0
}

const graphVersion = "v21.0"

func (b *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	resp, err := b.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode/100 != 2 {
		// Baton's errors and Meta's envelope (passed through by /graph)
		// both say {"error":{"message":...}}; Baton's has a string code.
		var e struct {
			Error struct {
				Code    json.RawMessage `json:"code"`
				Message string          `json:"message"`
			} `json:"error"`
		}
		be := &Error{Status: resp.StatusCode, Message: "unexpected answer from Baton: " + resp.Status}
		if json.Unmarshal(answer, &e) == nil && e.Error.Message != "" {
			be.Message = e.Error.Message
			_ = json.Unmarshal(e.Error.Code, &be.Code)
		}
		return be
	}
	if out != nil {
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("the answer from Baton to %s %s: %w", method, path, err)
		}
	}
	return nil
}

func threadPath(page, psid string) string {
	return "/v1/threads/" + url.PathEscape(page) + "/" + url.PathEscape(psid)
}

// ThreadView is the part of Baton's thread view the inbox reads.
type ThreadView struct {
	PageID    string     `json:"page_id"`
	PSID      string     `json:"psid"`
	Owner     string     `json:"owner"`
	HoldUntil *time.Time `json:"hold_until"`
	Pending   []Job      `json:"pending"`
}

// Job is a rule's pending job on a thread.
type Job struct {
	Rule string    `json:"rule"`
	At   time.Time `json:"at"`
}

// ReturnAt is when the return rule would fire, zero when none is pending.
func (v ThreadView) ReturnAt() time.Time {
	for _, p := range v.Pending {
		if p.Rule == "return" {
			return p.At
		}
	}
	return time.Time{}
}

// Hold is how long the owner holds the return rule off, zero for not.
func (v ThreadView) Hold() time.Time {
	if v.HoldUntil == nil {
		return time.Time{}
	}
	return *v.HoldUntil
}

// Thread reads a thread.
func (b *Client) Thread(ctx context.Context, page, psid string) (ThreadView, error) {
	var v ThreadView
	err := b.do(ctx, http.MethodGet, threadPath(page, psid), nil, &v)
	return v, err
}

// Threads lists the threads the app owns on page (limit of them, after
// cursor) and the cursor of the next page, empty at the end.
func (b *Client) Threads(ctx context.Context, page string, limit int, cursor string) ([]ThreadView, string, error) {
	q := url.Values{"page": {page}, "owner": {"me"}, "limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out struct {
		Threads    []ThreadView `json:"threads"`
		NextCursor string       `json:"next_cursor"`
	}
	err := b.do(ctx, http.MethodGet, "/v1/threads?"+q.Encode(), nil, &out)
	return out.Threads, out.NextCursor, err
}

// Control is pass (to the page's default app) or release.
func (b *Client) Control(ctx context.Context, page, psid, op, metadata string) (ThreadView, error) {
	var v ThreadView
	err := b.do(ctx, http.MethodPost, threadPath(page, psid)+"/"+op, map[string]string{"metadata": metadata}, &v)
	return v, err
}

// Activity tells Baton an agent is typing, has the thread claimed, or let
// it go (kind typing, claimed, released): the return rule waits while it
// is held.
func (b *Client) Activity(ctx context.Context, page, psid, kind, agent string, hold time.Duration) (ThreadView, error) {
	body := map[string]string{"kind": kind, "agent": agent}
	if hold > 0 {
		body["for"] = strconv.FormatInt(int64(hold/time.Second), 10)
	}
	var v ThreadView
	err := b.do(ctx, http.MethodPost, threadPath(page, psid)+"/activity", body, &v)
	return v, err
}

// Send sends text to the person, under a persona when personaID is set,
// and returns the message id.
func (b *Client) Send(ctx context.Context, page, psid, text, personaID string) (string, error) {
	body := map[string]any{"recipient": map[string]string{"id": psid}, "messaging_type": "RESPONSE", "message": map[string]string{"text": text}}
	if personaID != "" {
		body["persona_id"] = personaID
	}
	var sent struct {
		MessageID string `json:"message_id"`
	}
	err := b.do(ctx, http.MethodPost, "/graph/"+graphVersion+"/"+url.PathEscape(page)+"/messages", body, &sent)
	return sent.MessageID, err
}

// CreatePersona makes a Messenger persona on page and returns its id.
func (b *Client) CreatePersona(ctx context.Context, page, name, picture string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := b.do(ctx, http.MethodPost, "/graph/"+graphVersion+"/"+url.PathEscape(page)+"/personas",
		map[string]string{"name": name, "profile_picture_url": picture}, &out)
	if err == nil && out.ID == "" {
		err = errors.New("no persona id in the answer from Baton")
	}
	return out.ID, err
}

// Profile reads the person's name and picture URL (Meta's User Profile
// API, through Baton; Instagram's fields on an Instagram account).
func (b *Client) Profile(ctx context.Context, psid string, instagram bool) (name, picture string, err error) {
	fields := "first_name,last_name,profile_pic"
	if instagram {
		fields = "name,username,profile_pic"
	}
	var p struct {
		FirstName  string `json:"first_name"`
		LastName   string `json:"last_name"`
		Name       string `json:"name"`
		Username   string `json:"username"`
		ProfilePic string `json:"profile_pic"`
	}
	if err := b.do(ctx, http.MethodGet, "/graph/"+graphVersion+"/"+url.PathEscape(psid)+"?fields="+fields, nil, &p); err != nil {
		return "", "", err
	}
	switch {
	case p.FirstName != "" || p.LastName != "":
		name = p.FirstName + " " + p.LastName
	case p.Name != "":
		name = p.Name
	default:
		name = p.Username
	}
	return name, p.ProfilePic, nil
}

// Attachment is a file in a transcript entry.
type Attachment struct {
	Type string `json:"type"`
	URL  string `json:"url,omitempty"`
}

// TranscriptEntry is one entry of Baton's transcript of a thread.
type TranscriptEntry struct {
	Seq         uint64       `json:"seq"`
	At          time.Time    `json:"at"`
	Kind        string       `json:"kind"` // message, echo, postback, handover, rule
	From        string       `json:"from"`
	To          string       `json:"to"` // a handover's new owner
	App         string       `json:"app"`
	Text        string       `json:"text"`
	Attachments []Attachment `json:"attachments"`
	Mid         string       `json:"mid"`
	Payload     string       `json:"payload"`
	Event       string       `json:"event"`
	Metadata    string       `json:"metadata"`
}

// Transcript reads the newest limit entries of a thread (cursor empty) or
// the page before cursor, oldest first, and the cursor of the page before.
func (b *Client) Transcript(ctx context.Context, page, psid string, limit int, cursor string) ([]TranscriptEntry, string, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var out struct {
		Entries    []TranscriptEntry `json:"entries"`
		NextCursor string            `json:"next_cursor"`
	}
	err := b.do(ctx, http.MethodGet, threadPath(page, psid)+"/transcript?"+q.Encode(), nil, &out)
	return out.Entries, out.NextCursor, err
}

// callTimeout bounds each call of a paged read.
const callTimeout = 15 * time.Second

// OwnedThreads lists the threads the app owns on page, size a call, up
// to max of them.
func (b *Client) OwnedThreads(ctx context.Context, page string, size, max int) ([]ThreadView, error) {
	var all []ThreadView
	cursor := ""
	for len(all) < max {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		ts, next, err := b.Threads(cctx, page, size, cursor)
		cancel()
		if err != nil {
			return all, err
		}
		all = append(all, ts...)
		if next == "" || next == cursor || len(ts) == 0 {
			break
		}
		cursor = next
	}
	return all, nil
}

// TranscriptBack reads a thread's transcript from the newest entry back,
// size entries a call, until enough says a call's entries reach what the
// caller has, the transcript's start, or max entries; oldest first. On
// an error it answers what it read before, with the error.
func (b *Client) TranscriptBack(ctx context.Context, page, psid string, size, max int, enough func([]TranscriptEntry) bool) ([]TranscriptEntry, error) {
	var all []TranscriptEntry
	cursor := ""
	for len(all) < max {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		es, next, err := b.Transcript(cctx, page, psid, min(size, max-len(all)), cursor)
		cancel()
		if err != nil {
			return all, err
		}
		all = append(es, all...)
		if next == "" || next == cursor || len(es) == 0 || enough(es) {
			break
		}
		cursor = next
	}
	return all, nil
}
