package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	bolt "go.etcd.io/bbolt"

	"github.com/batonhq/baton/adapters"
	"github.com/batonhq/baton/adapters/webhook"
	"github.com/batonhq/baton/inbox/batonapi"
	"github.com/batonhq/baton/messenger"
)

// maxDelivery is the largest delivery body the inbox reads.
const maxDelivery = 2 << 20

// receive takes one delivery from Baton.
func (in *Inbox) receive(w http.ResponseWriter, r *http.Request) {
	d, err := webhook.Receive(in.key, r, maxDelivery, 5*time.Minute)
	if err != nil {
		var re *webhook.ReceiveError
		status := http.StatusBadRequest
		if errors.As(err, &re) {
			status = re.Status
		}
		http.Error(w, err.Error(), status) // a 400 is a dead letter in Baton: nothing lost
		return
	}
	if d.Kind == adapters.KindErasure {
		in.erased(w, d)
		return
	}
	var ev messenger.Event
	if err := json.Unmarshal(d.Event, &ev); err != nil {
		http.Error(w, "bad event", http.StatusBadRequest)
		return
	}
	if d.PSID == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c, err := in.apply(d, &ev)
	if err != nil {
		// Baton retries a 5xx: the delivery is not lost.
		in.log.Error("delivery not recorded", zap.String("delivery", d.ID), zap.Error(err))
		http.Error(w, "cannot record the delivery", http.StatusServiceUnavailable)
		return
	}
	if c != nil {
		in.hub.Poke()
		if c.Assigned {
			in.lookAt(c.PageID, c.PSID)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// erased handles Baton's notice that it erased a person: the inbox
// deletes its own copy, and open pages drop the conversation. A notice
// that does not name a person is refused (a dead letter in Baton); one
// the file cannot record is retried.
func (in *Inbox) erased(w http.ResponseWriter, d *adapters.Delivery) {
	var e adapters.Erasure
	if err := json.Unmarshal(d.Event, &e); err != nil || !messenger.ValidID(e.PageID) || !messenger.ValidID(e.PSID) {
		http.Error(w, "an erasure notice names a page and a PSID", http.StatusBadRequest)
		return
	}
	found, err := in.db.erasePerson(e.PageID, e.PSID)
	if err != nil {
		in.log.Error("erased person not deleted", zap.String("delivery", d.ID), zap.Error(err))
		http.Error(w, "cannot delete the person's conversation", http.StatusServiceUnavailable)
		return
	}
	if found {
		in.log.Info("conversation deleted: Baton erased the person", zap.String("page", e.PageID))
		in.hub.Poke()
	}
	w.WriteHeader(http.StatusNoContent)
}

// lookAt asks the background loop to refresh a conversation soon.
func (in *Inbox) lookAt(page, psid string) {
	select {
	case in.work <- [2]string{page, psid}:
	default: // the periodic pass will get to it
	}
}

// refreshEvery is how often the loop asks Baton about the conversations
// it has (return times, owners); renewals follow the claim's hold.
const (
	refreshEvery = 5 * time.Second
	cleanEvery   = time.Hour
)

// loop is Run's work after the rebuild.
func (in *Inbox) loop(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	renewEvery := in.opt.ClaimHold / 3
	var lastRenew, lastRefresh, lastClean time.Time
	warned := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case k := <-in.work:
			in.refresh(ctx, k[0], k[1])
		case now := <-tick.C:
			if now.Sub(lastRenew) >= renewEvery {
				lastRenew = now
				in.renewClaims(ctx)
			}
			if now.Sub(lastRefresh) >= in.refreshEvery() {
				lastRefresh = now
				in.refreshAll(ctx)
			}
			if now.Sub(lastClean) >= cleanEvery {
				lastClean = now
				if err := in.db.forgetSeen(in.clock.Now()); err != nil {
					in.log.Warn("old delivery marks not dropped", zap.Error(err))
				}
				if err := in.auth.forgetSessions(); err != nil {
					in.log.Warn("old sessions not dropped", zap.Error(err))
				}
			}
			in.checkWarnings(warned)
		}
	}
}

func (in *Inbox) refreshEvery() time.Duration {
	if in.opt.RefreshEvery > 0 {
		return in.opt.RefreshEvery
	}
	return refreshEvery
}

// checkWarnings tells the pages when a conversation enters (or leaves)
// its warning time before a return, which no delivery would announce.
func (in *Inbox) checkWarnings(warned map[string]bool) {
	cs, err := in.assigned()
	if err != nil {
		return
	}
	now, changed := in.clock.Now(), false
	seen := map[string]bool{}
	for _, c := range cs {
		k := c.PageID + "/" + c.PSID
		seen[k] = true
		if w := in.warning(&c, now); w != warned[k] {
			warned[k], changed = w, true
		}
	}
	for k := range warned {
		if !seen[k] {
			delete(warned, k)
		}
	}
	if changed {
		in.hub.Poke()
	}
}

// warning reports whether agents should be warned that Baton will soon
// hand c back: nobody holds it and the return is near.
func (in *Inbox) warning(c *Conversation, now time.Time) bool {
	return c.Assigned && c.ClaimedBy == "" && !c.ReturnAt.IsZero() && c.ReturnAt.Sub(now) <= in.opt.WarnBefore && !c.HoldUntil.After(now)
}

func (in *Inbox) refreshAll(ctx context.Context) {
	cs, err := in.assigned()
	if err != nil {
		in.log.Warn("conversations not read", zap.Error(err))
		return
	}
	for _, c := range cs {
		if ctx.Err() != nil {
			return
		}
		in.refresh(ctx, c.PageID, c.PSID)
	}
}

// refresh reads what Baton knows of one conversation: who owns it, its
// return time and hold, and (once) the person's profile.
func (in *Inbox) refresh(ctx context.Context, page, psid string) {
	var c *Conversation
	_ = in.db.b.View(func(tx *bolt.Tx) error { c, _ = getConv(tx, page, psid); return nil })
	if c == nil || !c.Assigned {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var name, pic string
	profile := c.ProfileAt.IsZero()
	if profile {
		var err error
		if name, pic, err = in.baton.Profile(cctx, psid, in.opt.Instagram[page]); err != nil {
			in.log.Info("profile not read", zap.String("page", page), zap.Error(err))
		}
		pic = safeURL(pic)
	}
	tv, err := in.baton.Thread(cctx, page, psid)
	if err != nil && !profile {
		in.log.Info("thread not read from Baton", zap.String("page", page), zap.Error(err))
		return
	}
	in.follow(page, psid, tv, err == nil, func(c *Conversation) {
		if profile {
			c.ProfileAt = in.clock.Now()
			if name != "" {
				c.Name, c.Picture = name, pic
			}
		}
	})
}

// follow records Baton's view of a thread (when known) and fn's changes,
// and tells the pages if anything changed.
func (in *Inbox) follow(page, psid string, tv batonapi.ThreadView, known bool, fn func(c *Conversation)) {
	changed := false
	_ = in.db.b.Update(func(tx *bolt.Tx) error {
		c, err := getConv(tx, page, psid)
		if err != nil || c == nil || !c.Assigned {
			return err
		}
		before, _ := json.Marshal(c)
		if fn != nil {
			fn(c)
		}
		if known {
			if tv.Owner != in.opt.App {
				in.leftLocked(tx, c, in.clock.Now(), "now with "+ownerName(tv.Owner))
			} else {
				c.ReturnAt, c.HoldUntil = tv.ReturnAt(), tv.Hold()
			}
		}
		after, _ := json.Marshal(c)
		if changed = string(before) != string(after); !changed {
			return nil
		}
		return putConv(tx, c)
	})
	if changed {
		in.hub.Poke()
	}
}

// renewClaims keeps Baton's hold on every claimed conversation.
func (in *Inbox) renewClaims(ctx context.Context) {
	cs, err := in.assigned()
	if err != nil {
		return
	}
	for _, c := range cs {
		if c.ClaimedBy == "" || ctx.Err() != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		tv, err := in.baton.Activity(cctx, c.PageID, c.PSID, "claimed", c.ClaimedBy, in.opt.ClaimHold)
		cancel()
		switch {
		case err == nil:
			in.follow(c.PageID, c.PSID, tv, true, nil)
		case batonapi.StatusOf(err) == http.StatusConflict:
			in.lookAt(c.PageID, c.PSID) // no longer the inbox's: refresh says so
		default:
			in.log.Info("claim not renewed", zap.String("page", c.PageID), zap.Error(err))
		}
	}
}
