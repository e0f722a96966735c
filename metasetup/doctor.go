package metasetup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/config"
	"github.com/batonhq/baton/messenger"
)

// Doctor checks a deployment against Meta, per page and app: the tokens
// (valid, right page and app, permissions), the page subscriptions,
// Conversation Routing's status, and that each app's callback at
// public_url answers Meta's verification handshake, made with hc (nil:
// one that trusts the system's roots, as Meta's does). What no API tells
// is a "manual" check saying where to look.
func Doctor(ctx context.Context, cfg *config.Config, graph *messenger.Client, hc *http.Client) []Check {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	// Meta does not follow a redirect from a callback; neither do we.
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	d := &doctor{cfg: cfg, graph: graph, hc: &noRedirect}
	d.run(ctx)
	return d.checks
}

// Failures counts the checks to fix.
func Failures(checks []Check) int {
	n := 0
	for _, c := range checks {
		if c.Status == "fix" {
			n++
		}
	}
	return n
}

// Check is one thing Doctor looked at.
type Check struct {
	Subject string `json:"subject"` // "page 100200300400500 app support-bot"
	Check   string `json:"check"`
	// Status is "ok", "fix" or "manual" (no API tells; see Detail).
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// String is the check as baton doctor prints it: status, subject, check
// and what to do.
func (c Check) String() string {
	label := map[string]string{"ok": "ok    ", "fix": "FIX   ", "manual": "MANUAL"}[c.Status]
	return fmt.Sprintf("%s %s: %s: %s", label, c.Subject, c.Check, c.Detail)
}

type doctor struct {
	cfg    *config.Config
	graph  *messenger.Client
	hc     *http.Client
	checks []Check
}

func (d *doctor) add(subject fmt.Stringer, name, status, format string, a ...any) {
	d.checks = append(d.checks, Check{Subject: subject.String(), Check: name, Status: status, Detail: fmt.Sprintf(format, a...)})
}

func (d *doctor) run(ctx context.Context) {
	pairs := pageApps(d.cfg)
	for i := range pairs {
		pa := &pairs[i]
		d.token(ctx, pa)
		d.permissions(ctx, pa)
		d.subscription(ctx, pa)
	}
	for i := range d.cfg.Pages {
		d.routing(ctx, &d.cfg.Pages[i], pairs)
	}
	seen := map[string]bool{}
	for _, pa := range pairs {
		if !seen[pa.app.Name] {
			seen[pa.app.Name] = true
			d.handshake(ctx, pa.app)
		}
	}
}

// token checks that the page token works and belongs to the page.
func (d *doctor) token(ctx context.Context, pa *pageApp) {
	const name = "page token"
	cred := pa.cred()
	if !pa.instagram {
		// "me" is the page a page token belongs to. An Instagram
		// account's token belongs to the Facebook Page linked to it, so
		// there the account itself is read instead.
		cred.PageID = ""
	}
	node, err := d.graph.Node(ctx, cred)
	switch {
	case err != nil:
		d.add(pa, name, "fix", "%s", describe(err, pa))
	case !pa.instagram && string(node.ID) != pa.page.ID:
		d.add(pa, name, "fix", "the token in %s belongs to page %s (%s), not %s: generate the app's page access token for page %s", pa.tokenEnv, node.ID, node.Name, pa.page.ID, pa.page.ID)
	default:
		d.add(pa, name, "ok", "belongs to %s (%s)", node.ID, node.Name)
	}
}

// permissions checks with debug_token that the token is the app's and
// has the permissions Baton's calls need.
func (d *doctor) permissions(ctx context.Context, pa *pageApp) {
	const name = "permissions"
	info, err := d.graph.DebugToken(ctx, appToken(pa.app), pa.token)
	if err != nil {
		todo := graphTrouble(err, nil)
		if messenger.IsBadToken(err) {
			todo = "Meta refused the app access token: check app_id and the app secret in " + pa.app.SecretEnv
		}
		d.add(pa, name, "fix", "debug_token: %v; %s", err, todo)
		return
	}
	if !info.IsValid {
		why := "invalid"
		if info.Error != nil {
			why = info.Error.Message
		}
		d.add(pa, name, "fix", "Meta says the token in %s is not valid (%s): generate a new page access token", pa.tokenEnv, why)
		return
	}
	var problems []string
	if string(info.AppID) != pa.app.AppID {
		problems = append(problems, fmt.Sprintf("the token was issued to app %s, not %s (app_id): generate it with app %s", info.AppID, pa.app.AppID, pa.app.Name))
	}
	if !pa.instagram && info.ProfileID != "" && string(info.ProfileID) != pa.page.ID {
		problems = append(problems, fmt.Sprintf("the token is for page %s, not %s", info.ProfileID, pa.page.ID))
	}
	var missing []string
	for _, s := range pa.scopes() {
		if !slices.Contains(info.Scopes, s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("the token lacks %s: grant the app these permissions (App Review for pages you do not manage), then generate the page token again", strings.Join(missing, ", ")))
	}
	if len(problems) > 0 {
		d.add(pa, name, "fix", "%s", strings.Join(problems, "; "))
		return
	}
	d.add(pa, name, "ok", "%s", strings.Join(pa.scopes(), ", "))
}

// subscription checks that the app gets every webhook field Baton needs
// from the page.
func (d *doctor) subscription(ctx context.Context, pa *pageApp) {
	const name = "webhook fields"
	apps, err := d.graph.SubscribedApps(ctx, pa.cred())
	if err != nil {
		d.add(pa, name, "fix", "%s", describe(err, pa))
		return
	}
	var have []string
	subscribed := false
	for _, a := range apps {
		if string(a.ID) == pa.app.AppID {
			have, subscribed = a.SubscribedFields, true
		}
	}
	missing, _ := fieldDiff(have, pa.fields())
	switch {
	case !subscribed:
		d.add(pa, name, "fix", "the app is not subscribed to the page: run baton subscribe")
	case len(missing) > 0:
		d.add(pa, name, "fix", "missing %s: run baton subscribe", list(missing))
	default:
		d.add(pa, name, "ok", "%d fields", len(pa.fields()))
	}
}

// routing checks the page's Conversation Routing status against its mode
// and says what to look at by hand: Meta has no API for the default app
// (REFERENCE §5, "Configuration API: none").
func (d *doctor) routing(ctx context.Context, pg *config.Page, pairs []pageApp) {
	var pa *pageApp
	for i := range pairs {
		if pairs[i].page == pg {
			pa = &pairs[i]
			break
		}
	}
	subject := stringer("page " + pg.ID)
	if pa == nil {
		d.add(subject, "conversation routing", "manual", "no hosted app has a page token here, so nothing was asked of Meta")
		return
	}
	settings := "Page settings, Advanced messaging, Conversation routing (https://www.facebook.com/settings?tab=msgr_conversation_routing)"
	if pa.instagram {
		settings = "the Instagram account's Conversation routing settings in Meta Business Suite"
	}
	d.featureStatus(ctx, subject, pg, pa, settings)
	switch pg.Mode {
	case config.ModeConversationRouting:
		app, _ := d.cfg.App(pg.Primary)
		d.add(subject, "default app", "manual", "config expects %s (app id %s) as the default app and lets %s take control; Meta has no API to read either: check them in %s", pg.Primary, app.AppID, list(pg.Takeover), settings)
	case config.ModeZeroConfig:
		d.add(subject, "default app", "manual", "config expects no default app (zero_config): check that none is chosen in %s", settings)
	}
}

// featureStatus compares messaging_feature_status with the page's mode.
func (d *doctor) featureStatus(ctx context.Context, subject fmt.Stringer, pg *config.Page, pa *pageApp, settings string) {
	const name = "conversation routing"
	st, err := d.graph.FeatureStatus(ctx, pa.cred())
	if err != nil {
		d.add(subject, name, "fix", "%s", describe(err, pa))
		return
	}
	flag, on := "msgr_multi_app", st.MsgrMultiApp
	if pa.instagram {
		flag, on = "ig_multi_app", st.IGMultiApp
	}
	switch {
	case pg.Mode == config.ModeConversationRouting && !on:
		d.add(subject, name, "fix", "%s is false: Conversation Routing is off; turn it on by choosing a default app in %s", flag, settings)
	case pg.Mode == config.ModeLegacy && on:
		d.add(subject, name, "fix", "%s is true: the page uses Conversation Routing; set mode: conversation_routing", flag)
	default:
		d.add(subject, name, "ok", "%s is %t (mode %s)", flag, on, pg.Mode)
	}
}

// handshake makes Meta's verification request to the app's callback at
// Baton: the answer must be 200 with the challenge as its body.
func (d *doctor) handshake(ctx context.Context, a *config.App) {
	subject := stringer("app " + a.Name)
	const name = "webhook URL"
	if d.cfg.PublicURL == "" {
		d.add(subject, name, "fix", "public_url is not set, so the callback cannot be checked: set it to where Meta reaches Baton (https://...)")
		return
	}
	callback := webhookURL(d.cfg, a)
	if !strings.HasPrefix(callback, "https://") {
		d.add(subject, name, "fix", "%s is not https: Meta calls only https callbacks with a certificate from a public authority", callback)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	challenge := hex.EncodeToString(b)
	q := url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {a.VerifyToken.Reveal()}, "hub.challenge": {challenge}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, callback+"?"+q.Encode(), nil)
	if err != nil {
		d.add(subject, name, "fix", "%s: %v", callback, err)
		return
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL holds the verify token
		}
		d.add(subject, name, "fix", "%s did not answer (%v): is Baton running and reachable there?", callback, err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode == http.StatusForbidden:
		d.add(subject, name, "fix", "%s refused the verify token (403): the Baton there has another value in %s; restart it with this one", callback, a.VerifyTokenEnv)
	case resp.StatusCode != http.StatusOK:
		d.add(subject, name, "fix", "%s answered %s, want 200 with the challenge: is it Baton, and is public_url right?", callback, resp.Status)
	case string(body) != challenge:
		d.add(subject, name, "fix", "%s answered 200 without the challenge (%.60q): something other than Baton answers there", callback, body)
	default:
		d.add(subject, name, "ok", "%s answers the verification handshake", callback)
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
