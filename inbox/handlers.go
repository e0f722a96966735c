package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/batonhq/baton/inbox/batonapi"
)

// maxText is the longest reply or note: Messenger's limit for a text.
const maxText = 2000

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("body: %v", err)
	}
	return nil
}

// me answers who is signed in, with what the page needs: the CSRF token
// for its changes, the colleagues to assign to, the canned replies.
func (in *Inbox) me(w http.ResponseWriter, r *http.Request) {
	a := agentOf(r)
	_, token := in.auth.who(r)
	agents := make([]*Agent, 0, len(in.agents))
	for _, x := range in.agents {
		agents = append(agents, x)
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i].Name < agents[j].Name })
	canned := in.opt.Canned
	if canned == nil {
		canned = []Canned{}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"agent": a, "csrf": token, "agents": agents, "canned": canned,
		"closing_message": in.opt.ClosingMessage, "done": in.opt.Done,
		"warn_before_seconds": int(in.opt.WarnBefore / time.Second),
		"password_login":      a.PasswordHash != "",
	})
}

// listView is the list as a page shows it, with the inbox's clock.
type listView struct {
	Now           time.Time          `json:"now"`
	Conversations []ConversationView `json:"conversations"`
}

func (in *Inbox) listConversations(w http.ResponseWriter, r *http.Request) {
	cs, err := in.list(agentOf(r).Name)
	if err != nil {
		in.log.Error("conversations not read", zap.Error(err))
		writeError(w, http.StatusInternalServerError, "cannot read the conversations")
		return
	}
	now := in.clock.Now()
	for i := range cs {
		cs[i].Warn = in.warning(&cs[i].Conversation, now)
	}
	writeJSON(w, http.StatusOK, listView{Now: now, Conversations: cs})
}

// detailView is one conversation with its messages.
type detailView struct {
	Now          time.Time    `json:"now"`
	Conversation Conversation `json:"conversation"`
	Warn         bool         `json:"warn"`
	Read         uint64       `json:"read"` // what this agent had read before
	Messages     []Message    `json:"messages"`
}

func (in *Inbox) getConversation(w http.ResponseWriter, r *http.Request) {
	page, psid := r.PathValue("page"), r.PathValue("psid")
	c, ms, err := in.detail(page, psid)
	if errors.Is(err, errNoConversation) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		in.log.Error("conversation not read", zap.Error(err))
		writeError(w, http.StatusInternalServerError, "cannot read the conversation")
		return
	}
	var read uint64
	_ = in.db.b.View(func(tx *bolt.Tx) error { read = readSeq(tx, agentOf(r).Name, page, psid); return nil })
	now := in.clock.Now()
	writeJSON(w, http.StatusOK, detailView{Now: now, Conversation: *c, Warn: in.warning(c, now), Read: read, Messages: ms})
}

// actionBody is the body of every conversation action; each reads its
// own fields.
type actionBody struct {
	Text           string  `json:"text"`
	Agent          string  `json:"agent"`
	Typing         bool    `json:"typing"`
	Seq            uint64  `json:"seq"`
	ClosingMessage *string `json:"closing_message"`
}

// act runs one action of an agent on a conversation.
func (in *Inbox) act(w http.ResponseWriter, r *http.Request) {
	page, psid, action := r.PathValue("page"), r.PathValue("psid"), r.PathValue("action")
	var b actionBody
	if err := decode(r, &b); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	a := agentOf(r)
	var err error
	var out any = map[string]string{"status": "ok"}
	switch action {
	case "reply":
		var mid string
		mid, err = in.reply(r.Context(), a, page, psid, b.Text, FromAgent)
		out = map[string]string{"message_id": mid}
	case "note":
		err = in.note(a, page, psid, b.Text)
	case "claim":
		err = in.claim(r.Context(), a, page, psid, b.Agent)
	case "unclaim":
		err = in.unclaim(r.Context(), page, psid)
	case "typing":
		err = in.typing(r.Context(), a, page, psid, b.Typing)
	case "read":
		err = in.markRead(a.Name, page, psid, b.Seq)
	case "done":
		var owner string
		owner, err = in.done(r.Context(), a, page, psid, b.ClosingMessage)
		out = map[string]string{"owner": owner}
	default:
		writeError(w, http.StatusNotFound, "no such action")
		return
	}
	if err != nil {
		in.writeActionError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// userError is a mistake of the agent's, said as is.
type userError struct {
	status int
	msg    string
}

func (e *userError) Error() string { return e.msg }

func (in *Inbox) writeActionError(w http.ResponseWriter, err error) {
	var ue *userError
	var be *batonapi.Error
	switch {
	case errors.As(err, &ue):
		writeError(w, ue.status, ue.msg)
	case errors.Is(err, errNoConversation):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.As(err, &be):
		writeError(w, http.StatusBadGateway, err.Error()) // Baton's or Meta's words: the agent can act on them
	case errors.Is(err, batonapi.ErrUnreachable):
		writeError(w, http.StatusBadGateway, err.Error())
	default:
		in.log.Error("action failed", zap.Error(err))
		writeError(w, http.StatusInternalServerError, "the inbox could not do it: see its log")
	}
}

func checkText(text string) (string, error) {
	text = strings.TrimSpace(text)
	switch {
	case text == "":
		return "", &userError{http.StatusBadRequest, "write something first"}
	case utf8.RuneCountInString(text) > maxText:
		return "", &userError{http.StatusBadRequest, fmt.Sprintf("at most %d characters", maxText)}
	}
	return text, nil
}

// reply sends the agent's text to the person, under the agent's persona
// when configured, and shows it in the conversation.
func (in *Inbox) reply(ctx context.Context, a *Agent, page, psid, text, from string) (string, error) {
	text, err := checkText(text)
	if err != nil {
		return "", err
	}
	if _, _, err := in.detail(page, psid); err != nil {
		return "", err
	}
	persona := in.persona(ctx, a, page)
	mid, err := in.baton.Send(ctx, page, psid, text, persona)
	if err != nil {
		return "", err
	}
	_, err = in.update(page, psid, func(tx *bolt.Tx, c *Conversation) error {
		c.UpdatedAt = in.clock.Now()
		_, err := addMessage(tx, c, Message{Mid: mid, At: in.clock.Now(), From: from, Agent: a.Name, Text: text})
		if err == nil {
			// One's own reply is read.
			err = putRead(tx, a.Name, page, psid, c.LastSeq)
		}
		return err
	})
	return mid, err
}

// persona is the agent's persona id on page, made the first time; ""
// sends as the page (no persona configured, an Instagram account, or
// Meta refused to make one: the reply still goes).
func (in *Inbox) persona(ctx context.Context, a *Agent, page string) string {
	if !a.Persona || a.Picture == "" || in.opt.Instagram[page] {
		return ""
	}
	id, err := in.db.persona(a.Name, page)
	if err != nil || id != "" {
		return id
	}
	id, err = in.baton.CreatePersona(ctx, page, a.DisplayName, a.Picture)
	if err != nil {
		in.log.Warn("persona not created: replies go as the page", zap.String("agent", a.Name), zap.String("page", page), zap.Error(err))
		return ""
	}
	if err := in.db.putPersona(a.Name, page, id); err != nil {
		in.log.Warn("persona id not saved", zap.String("agent", a.Name), zap.Error(err))
	}
	return id
}

// note keeps a private note in the conversation: never sent.
func (in *Inbox) note(a *Agent, page, psid, text string) error {
	text, err := checkText(text)
	if err != nil {
		return err
	}
	_, err = in.update(page, psid, func(tx *bolt.Tx, c *Conversation) error {
		_, err := addMessage(tx, c, Message{At: in.clock.Now(), From: FromNote, Agent: a.Name, Text: text})
		if err == nil {
			err = putRead(tx, a.Name, page, psid, c.LastSeq)
		}
		return err
	})
	return err
}

// claim gives the conversation to an agent (the caller, or a colleague
// the caller assigns it to) and holds Baton's return rule for them.
func (in *Inbox) claim(ctx context.Context, by *Agent, page, psid, to string) error {
	if to == "" {
		to = by.Name
	}
	target := in.agents[to]
	if target == nil {
		return &userError{http.StatusBadRequest, fmt.Sprintf("no agent %q", to)}
	}
	if _, _, err := in.detail(page, psid); err != nil {
		return err
	}
	tv, err := in.baton.Activity(ctx, page, psid, "claimed", target.Name, in.opt.ClaimHold)
	if err != nil {
		if batonapi.StatusOf(err) == http.StatusConflict {
			in.lookAt(page, psid)
			return &userError{http.StatusConflict, "the inbox no longer has this conversation"}
		}
		return err
	}
	_, err = in.update(page, psid, func(tx *bolt.Tx, c *Conversation) error {
		what := by.DisplayName + " claimed it"
		if target != by {
			what = by.DisplayName + " assigned it to " + target.DisplayName
		}
		c.ClaimedBy, c.ClaimedAt = target.Name, in.clock.Now()
		c.ReturnAt, c.HoldUntil = tv.ReturnAt(), tv.Hold()
		_, err := addMessage(tx, c, Message{At: in.clock.Now(), From: FromEvent, Text: what})
		return err
	})
	return err
}

// unclaim opens the conversation to everyone again and lets Baton's
// return rule run.
func (in *Inbox) unclaim(ctx context.Context, page, psid string) error {
	c, _, err := in.detail(page, psid)
	if err != nil {
		return err
	}
	tv, err := in.baton.Activity(ctx, page, psid, "released", c.ClaimedBy, 0)
	if err != nil && batonapi.StatusOf(err) != http.StatusConflict {
		return err
	}
	_, err = in.update(page, psid, func(tx *bolt.Tx, c *Conversation) error {
		if c.ClaimedBy != "" {
			_, _ = addMessage(tx, c, Message{At: in.clock.Now(), From: FromEvent, Text: in.displayName(c.ClaimedBy) + " let it go"})
		}
		c.ClaimedBy, c.ClaimedAt = "", time.Time{}
		c.ReturnAt, c.HoldUntil = tv.ReturnAt(), tv.Hold()
		return nil
	})
	return err
}

func (in *Inbox) displayName(agent string) string {
	if a := in.agents[agent]; a != nil {
		return a.DisplayName
	}
	return agent
}

// typing holds Baton's return rule while the agent writes; when they
// stop, a claim holds it, or nothing does.
func (in *Inbox) typing(ctx context.Context, a *Agent, page, psid string, typing bool) error {
	c, _, err := in.detail(page, psid)
	if err != nil {
		return err
	}
	kind, hold, who := "typing", in.opt.TypingHold, a.Name
	if !typing {
		kind, hold, who = "released", 0, a.Name
		if c.ClaimedBy != "" {
			kind, hold, who = "claimed", in.opt.ClaimHold, c.ClaimedBy
		}
	}
	tv, err := in.baton.Activity(ctx, page, psid, kind, who, hold)
	if err != nil {
		if batonapi.StatusOf(err) == http.StatusConflict {
			in.lookAt(page, psid)
			return &userError{http.StatusConflict, "the inbox no longer has this conversation"}
		}
		return err
	}
	in.follow(page, psid, tv, true, nil)
	return nil
}

// done sends the closing message, if any, and hands the conversation
// back as configured.
func (in *Inbox) done(ctx context.Context, a *Agent, page, psid string, closing *string) (string, error) {
	msg := in.opt.ClosingMessage
	if closing != nil {
		msg = *closing
	}
	c, _, err := in.detail(page, psid)
	if err != nil {
		return "", err
	}
	// A Done whose hand-back failed after its closing message went has
	// said goodbye already: pressed again, it does not say it twice.
	said := c.LastFrom == FromAgent && c.Last == strings.TrimSpace(msg)
	if strings.TrimSpace(msg) != "" && !said {
		if _, err := in.reply(ctx, a, page, psid, msg, FromAgent); err != nil {
			return "", fmt.Errorf("closing message not sent, the conversation stays: %w", err)
		}
	}
	tv, err := in.baton.Control(ctx, page, psid, in.opt.Done, "done in the inbox by "+a.Name)
	if err != nil {
		return "", err
	}
	_, err = in.update(page, psid, func(tx *bolt.Tx, c *Conversation) error {
		c.Owner = tv.Owner
		in.leftLocked(tx, c, in.clock.Now(), a.DisplayName+" pressed Done")
		return nil
	})
	return tv.Owner, err
}
