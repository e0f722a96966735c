// Package metasetup sets a Baton deployment up at Meta and checks it:
// the page subscriptions and app webhook configurations Baton needs
// (Subscribe, baton subscribe) and the tokens, permissions, routing
// status and callback behind them (Doctor, baton doctor). It makes Graph
// calls with the config's tokens; the orchestrator never does these.
package metasetup

import (
	"errors"
	"slices"
	"sort"
	"strings"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
)

// What Subscribe and Doctor share: the (page, app) pairs of a config,
// the webhook fields and permissions Baton needs on each, and Meta's
// refusals told as what to do.

// pageApp is one hosted app on one page, with the page token it calls
// the Graph API with.
type pageApp struct {
	page      *config.Page
	app       *config.App
	token     string
	tokenEnv  string
	instagram bool
}

func (pa pageApp) String() string { return "page " + pa.page.ID + " app " + pa.app.Name }

// cred is the pair's Graph credentials on its page node.
func (pa pageApp) cred() messenger.Credentials {
	return messenger.Credentials{PageID: messenger.ID(pa.page.ID), AccessToken: pa.token, AppSecret: pa.app.Secret.Reveal()}
}

// fields are the webhook fields Baton needs on the pair's page.
func (pa pageApp) fields() []string { return neededFields(pa.instagram) }

// scopes are the permissions the pair's page token needs.
func (pa pageApp) scopes() []string {
	if pa.instagram {
		return messenger.ScopesForInstagram
	}
	return messenger.ScopesForMessenger
}

// object is the webhook object of the pair's page.
func (pa pageApp) object() string {
	if pa.instagram {
		return messenger.ObjectInstagram
	}
	return messenger.ObjectPage
}

func neededFields(instagram bool) []string {
	if instagram {
		return messenger.FieldsForInstagram
	}
	return messenger.FieldsForConversationRouting
}

// pageApps lists the config's pages and, on each, the hosted apps with a
// page token, in config order and by app name.
func pageApps(cfg *config.Config) []pageApp {
	var out []pageApp
	for i := range cfg.Pages {
		pg := &cfg.Pages[i]
		names := make([]string, 0, len(pg.Tokens))
		for name := range pg.Tokens {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			a, _ := cfg.App(name)
			tok := pg.Tokens[name]
			out = append(out, pageApp{page: pg, app: a, token: tok.Token.Reveal(), tokenEnv: tok.TokenEnv, instagram: pg.Platform == config.PlatformInstagram})
		}
	}
	return out
}

// appWebhook is what an app's webhook configuration at Meta should be for
// one object: Baton's callback for the app and the fields its pages need.
type appWebhook struct {
	app      *config.App
	object   string
	callback string
	fields   []string
}

func (w appWebhook) String() string { return "app " + w.app.Name + " webhooks (" + w.object + ")" }

// appWebhooks lists, for each hosted app with a page token, the objects
// its pages need (page for Messenger, instagram for Instagram) with the
// callback under publicURL.
func appWebhooks(cfg *config.Config, pairs []pageApp) []appWebhook {
	var out []appWebhook
	seen := map[string]bool{}
	for _, pa := range pairs {
		key := pa.app.Name + " " + pa.object()
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, appWebhook{app: pa.app, object: pa.object(), callback: webhookURL(cfg, pa.app), fields: pa.fields()})
	}
	return out
}

// webhookURL is where Meta reaches the app's webhooks at Baton.
func webhookURL(cfg *config.Config, a *config.App) string {
	return cfg.PublicURL + "/webhooks/" + a.Name
}

func appToken(a *config.App) string {
	return messenger.AppAccessToken(messenger.ID(a.AppID), a.Secret.Reveal())
}

// fieldDiff tells what changes from have to want.
func fieldDiff(have, want []string) (added, removed []string) {
	for _, f := range want {
		if !slices.Contains(have, f) {
			added = append(added, f)
		}
	}
	for _, f := range have {
		if !slices.Contains(want, f) {
			removed = append(removed, f)
		}
	}
	return added, removed
}

// union is have with want's missing fields after it.
func union(have, want []string) []string {
	out := slices.Clone(have)
	for _, f := range want {
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// graphTrouble names what to do about a Graph refusal or a failed call.
// pa names the pair the call was made for (nil for app-level calls).
func graphTrouble(err error, pa *pageApp) string {
	var ge *messenger.Error
	if !errors.As(err, &ge) {
		var te *messenger.TransportError
		if errors.As(err, &te) {
			return "no answer from the Graph API: check graph.url and the network"
		}
		return ""
	}
	token := "the page token"
	if pa != nil && pa.tokenEnv != "" {
		token = "the page token in " + pa.tokenEnv
	}
	switch {
	case ge.Code == messenger.CodeBadToken:
		return token + " is invalid or expired: generate a new page access token for the app and set it"
	case ge.Code == messenger.CodePermissionsError || (ge.Code == messenger.CodePermission && ge.Subcode == 0):
		return token + " lacks a permission: generate it again from a person who can moderate the page and granted pages_messaging and pages_manage_metadata (Instagram: instagram_basic, instagram_manage_messages, pages_manage_metadata)"
	case ge.Code == messenger.CodeInvalidParameter && ge.Subcode == 33:
		return token + " cannot reach this page: it belongs to another page or app; generate the token for this page"
	case ge.Code == messenger.CodeCallbackVerification:
		return "Meta could not verify the callback: Baton must run and answer at public_url over https with the app's verify token (verify_token_env); baton doctor checks it"
	case messenger.IsRateLimited(err):
		return "Meta is rate limiting: try again in a few minutes"
	case messenger.IsTransient(err):
		return "a passing error at Meta: try again"
	}
	return ""
}

// describe is an error with what to do about it, on a second line.
func describe(err error, pa *pageApp) string {
	s := err.Error()
	if todo := graphTrouble(err, pa); todo != "" {
		s += "\n    what to do: " + todo
	}
	return s
}

func list(fields []string) string {
	if len(fields) == 0 {
		return "none"
	}
	return strings.Join(fields, ", ")
}
