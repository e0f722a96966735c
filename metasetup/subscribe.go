package metasetup

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
)

// Subscribe subscribes each hosted app to its pages with exactly the
// webhook fields Baton needs and, when public_url is set, points each
// app's webhook configuration at Baton. It reads what Meta holds first
// and prints to out what changes; dryRun changes nothing.
func Subscribe(ctx context.Context, cfg *config.Config, client *messenger.Client, out io.Writer, dryRun bool) error {
	pairs := pageApps(cfg)
	if len(pairs) == 0 {
		fmt.Fprintln(out, "no hosted app has a page token: nothing to subscribe")
		return nil
	}
	s := &subscriber{client: client, out: out, dryRun: dryRun}
	for i := range pairs {
		s.page(ctx, &pairs[i])
	}
	if cfg.PublicURL == "" {
		fmt.Fprintln(out, "public_url is not set: the apps' webhook callbacks were left as they are (set public_url to have baton subscribe set them)")
	} else {
		for _, w := range appWebhooks(cfg, pairs) {
			s.app(ctx, w)
		}
	}
	if s.failed > 0 {
		return fmt.Errorf("%d of %d subscription(s) failed", s.failed, s.total)
	}
	if dryRun {
		fmt.Fprintln(out, "dry run: nothing was changed")
	}
	return nil
}

// subscriber makes the subscriptions, printing a line per change.
type subscriber struct {
	client        *messenger.Client
	out           io.Writer
	dryRun        bool
	total, failed int
}

func (s *subscriber) fail(what fmt.Stringer, err error, pa *pageApp, hint string) {
	s.failed++
	fmt.Fprintf(s.out, "%s: FAILED: %s\n", what, describe(err, pa))
	if hint != "" {
		fmt.Fprintf(s.out, "    %s\n", hint)
	}
}

// page subscribes the pair's app to its page with the fields Baton needs,
// replacing any others (POST subscribed_apps sets the app's fields).
func (s *subscriber) page(ctx context.Context, pa *pageApp) {
	s.total++
	apps, err := s.client.SubscribedApps(ctx, pa.cred())
	if err != nil {
		s.fail(pa, fmt.Errorf("read subscribed_apps: %w", err), pa, "")
		return
	}
	var have []string
	subscribed := false
	for _, a := range apps {
		if string(a.ID) == pa.app.AppID {
			have, subscribed = a.SubscribedFields, true
		}
	}
	want := pa.fields()
	added, removed := fieldDiff(have, want)
	if len(added) == 0 && len(removed) == 0 {
		fmt.Fprintf(s.out, "%s: already right (%d fields)\n", pa, len(want))
		return
	}
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "add "+list(added))
	}
	if len(removed) > 0 {
		parts = append(parts, "remove "+list(removed))
	}
	change := strings.Join(parts, "; ")
	if !subscribed {
		change = "subscribe to " + list(want)
	}
	state := ""
	if !subscribed {
		state = "not subscribed; "
	}
	if s.dryRun {
		fmt.Fprintf(s.out, "%s: %swould %s\n", pa, state, change)
		return
	}
	if err := s.client.Subscribe(ctx, pa.cred(), want); err != nil {
		s.fail(pa, fmt.Errorf("subscribe: %w", err), pa, "")
		return
	}
	fmt.Fprintf(s.out, "%s: %s%s: done\n", pa, state, change)
}

// app points the app's webhook configuration for one object at Baton's
// callback with every field Baton needs. Fields the app has beyond those
// are kept: they may serve something else, and an app-level field Baton
// does not use costs nothing while the page subscription leaves it out.
func (s *subscriber) app(ctx context.Context, w appWebhook) {
	s.total++
	id, tok := messenger.ID(w.app.AppID), appToken(w.app)
	subs, err := s.client.AppSubscriptions(ctx, id, tok)
	if err != nil {
		s.fail(w, fmt.Errorf("read the app's subscriptions: %w", err), nil, "")
		return
	}
	var cur messenger.AppSubscription
	for _, sub := range subs {
		if sub.Object == w.object {
			cur = sub
		}
	}
	added, _ := fieldDiff(cur.Fields, w.fields)
	var change string
	switch {
	case cur.CallbackURL == "":
		change = "set callback " + w.callback
	case cur.CallbackURL != w.callback:
		change = "callback " + cur.CallbackURL + " -> " + w.callback
	}
	if len(added) > 0 {
		if change != "" {
			change += "; "
		}
		change += "add " + list(added)
	}
	if change == "" {
		fmt.Fprintf(s.out, "%s: already right (callback %s)\n", w, w.callback)
		return
	}
	if s.dryRun {
		fmt.Fprintf(s.out, "%s: would %s\n", w, change)
		return
	}
	sub := messenger.AppSubscription{Object: w.object, CallbackURL: w.callback, Fields: union(cur.Fields, w.fields), VerifyToken: w.app.VerifyToken.Reveal()}
	if err := s.client.SetAppSubscription(ctx, id, tok, sub); err != nil {
		hint := ""
		if w.object == messenger.ObjectInstagram {
			// https://developers.facebook.com/docs/messenger-platform/instagram/features/webhook/
			hint = "Meta's Instagram messaging docs set the instagram object in the App Dashboard (Webhooks, Instagram): callback " + w.callback + ", fields " + list(w.fields)
		}
		s.fail(w, fmt.Errorf("set the app's subscription: %w", err), nil, hint)
		return
	}
	fmt.Fprintf(s.out, "%s: %s: done\n", w, change)
}
