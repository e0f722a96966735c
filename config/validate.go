package config

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/batonhq/baton/adapters"
)

// validator collects every problem of a decoded config, each at its line.
type validator struct {
	file  string
	lines fieldLines
	env   LookupEnv
	errs  Errors
	// offline accepts a variable that is not set, noting it in unset.
	offline bool
	unset   []string
}

func (v *validator) bad(field, format string, a ...any) {
	v.errs = append(v.errs, Problem{File: v.file, Line: v.lines.line(field), Field: field, Msg: fmt.Sprintf(format, a...)})
}

var (
	appNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	digitsRE  = regexp.MustCompile(`^[0-9]+$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// agentNameRE: an inbox agent's sign-in name.
	agentNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// secret resolves an *_env key. required says the key must be set.
func (v *validator) secret(field, envName string, required bool, out *Secret) {
	if envName == "" {
		if required {
			v.bad(field, "required: name the environment variable that holds the secret")
		}
		return
	}
	if !envNameRE.MatchString(envName) {
		v.bad(field, "%q is not an environment variable name", envName)
		return
	}
	val, ok := v.env(envName)
	if !ok || val == "" {
		if v.offline {
			v.unset = append(v.unset, envName)
			return
		}
		v.bad(field, "environment variable %s is not set", envName)
		return
	}
	*out = Secret(val)
}

// inline refuses a secret written in the file.
func (v *validator) inline(field, value, envKey string) {
	if value != "" {
		v.bad(field, "secrets are not written in the file; put it in an environment variable and name it with %s", envKey)
	}
}

func (v *validator) config(c *Config) {
	v.inline("admin.token", c.Admin.InlineToken, "admin.token_env")
	v.secret("admin.token_env", c.Admin.TokenEnv, true, &c.Admin.Token)
	if u, err := url.Parse(c.Graph.URL); err != nil || u.Scheme == "" || u.Host == "" {
		v.bad("graph.url", "%q is not an absolute URL", c.Graph.URL)
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			v.bad("public_url", "%q is not an http(s) URL such as https://baton.example.com", c.PublicURL)
		} else {
			c.PublicURL = strings.TrimSuffix(c.PublicURL, "/")
		}
	}
	v.tls(c)
	v.store(c)
	v.cluster(c)
	if !regexp.MustCompile(`^v[0-9]+\.[0-9]+$`).MatchString(c.Graph.Version) {
		v.bad("graph.version", "%q is not a Graph API version such as v21.0", c.Graph.Version)
	}
	if w := c.Webhooks.CommitWait; w < 0 || w > time.Second {
		v.bad("webhooks.commit_wait", "%s: want 0 (never wait) up to 1s; a few milliseconds is the useful range", w)
	}
	if r := c.Webhooks.JournalRetention; r < time.Hour {
		v.bad("webhooks.journal_retention", "%s: want at least 1h (default 168h, a week)", r)
	}
	if c.Webhooks.MaxBody < 1024 {
		v.bad("webhooks.max_body", "%d bytes is too small for a webhook", c.Webhooks.MaxBody)
	}
	// Large bodies hold at most three quarters of it (the rest is kept
	// for Meta's small ones): twice max_body leaves room for one.
	if n := c.Webhooks.MaxInflightBytes; n < 2*c.Webhooks.MaxBody {
		v.bad("webhooks.max_inflight_bytes", "%d bytes is less than twice webhooks.max_body (%d): a quarter is kept for small bodies, and a body of max_body must fit in the rest", n, c.Webhooks.MaxBody)
	}
	if c.Delivery.MaxAttempts < 1 {
		v.bad("delivery.max_attempts", "must be at least 1")
	}
	if c.Delivery.Backoff > c.Delivery.MaxBackoff {
		v.bad("delivery.backoff", "%s is longer than max_backoff %s", c.Delivery.Backoff, c.Delivery.MaxBackoff)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		v.bad("log.format", "%q is not json or console", c.Log.Format)
	}
	if len(c.Apps) == 0 {
		v.bad("apps", "at least one app is required")
	}
	names, ids := map[string]bool{}, map[string]bool{}
	for i := range c.Apps {
		v.app(fmt.Sprintf("apps[%d]", i), &c.Apps[i], names, ids)
	}
	if len(c.Pages) == 0 {
		v.bad("pages", "at least one page is required")
	}
	pageIDs := map[string]bool{}
	for i := range c.Pages {
		v.page(fmt.Sprintf("pages[%d]", i), &c.Pages[i], c, pageIDs)
	}
	v.tokens(c)
	v.inbox(c)
}

// minTokenLen is the shortest admin or bot API token accepted.
const minTokenLen = 16

// tokens checks the admin token, each hosted app's token_env and each
// page's api_token_env: every one long enough to resist guessing, and none
// shared, since a shared token lets one app act as another (or as the
// admin, or on another page). Messages name the
// variable, never the value.
func (v *validator) tokens(c *Config) {
	holder := map[Secret]string{} // token -> the field that holds it first
	check := func(field, envName string, tok Secret) {
		if tok == "" {
			return // not set, or already reported
		}
		if utf8.RuneCountInString(tok.Reveal()) < minTokenLen {
			v.bad(field, "the token in %s is shorter than %d characters", envName, minTokenLen)
		}
		if first, dup := holder[tok]; dup {
			v.bad(field, "%s holds the same token as %s: the admin and every app need their own", envName, first)
			return
		}
		holder[tok] = field
	}
	check("admin.token_env", c.Admin.TokenEnv, c.Admin.Token)
	for i := range c.Apps {
		if a := &c.Apps[i]; a.Hosted() {
			check(fmt.Sprintf("apps[%d].token_env", i), a.TokenEnv, a.APIToken)
		}
	}
	for i, p := range c.Pages {
		names := make([]string, 0, len(p.Tokens))
		for name := range p.Tokens {
			names = append(names, name)
		}
		sort.Strings(names) // problems in a stable order
		for _, name := range names {
			tok := p.Tokens[name]
			check(fmt.Sprintf("pages[%d].tokens.%s.api_token_env", i, name), tok.APITokenEnv, tok.APIToken)
		}
	}
}

func (v *validator) app(path string, a *App, names, ids map[string]bool) {
	switch {
	case a.Name == "":
		v.bad(path+".name", "required")
	case !appNameRE.MatchString(a.Name):
		v.bad(path+".name", "%q must be lower-case letters, digits, - and _ (it is part of the webhook URL)", a.Name)
	case names[a.Name]:
		v.bad(path+".name", "%q is used by another app", a.Name)
	}
	names[a.Name] = true
	switch {
	case a.AppID == "":
		v.bad(path+".app_id", "required: the Facebook app id")
	case !digitsRE.MatchString(a.AppID):
		v.bad(path+".app_id", "%q is not a Facebook app id (digits only; quote it in YAML)", a.AppID)
	case ids[a.AppID]:
		v.bad(path+".app_id", "%s is used by another app", a.AppID)
	}
	ids[a.AppID] = true
	switch a.SendPolicy.NotOwner {
	case "refuse", "take":
	default:
		v.bad(path+".send_policy.not_owner", "%q is not refuse or take", a.SendPolicy.NotOwner)
	}
	v.inline(path+".secret", a.InlineSecret, path+".secret_env")
	v.inline(path+".verify_token", a.InlineVerifyToken, path+".verify_token_env")
	v.inline(path+".token", a.InlineToken, path+".token_env")
	if !a.Hosted() {
		for _, f := range []struct{ key, val string }{{"verify_token_env", a.VerifyTokenEnv}, {"token_env", a.TokenEnv}} {
			if f.val != "" {
				v.bad(path+"."+f.key, "only a hosted app (one with secret_env) has this")
			}
		}
		if a.Adapter != nil {
			v.bad(path+".adapter", "an external app has no adapter; set secret_env to host the app's webhooks in Baton")
		}
		return
	}
	v.secret(path+".secret_env", a.SecretEnv, true, &a.Secret)
	v.secret(path+".verify_token_env", a.VerifyTokenEnv, true, &a.VerifyToken)
	v.secret(path+".token_env", a.TokenEnv, false, &a.APIToken)
	if a.Adapter == nil {
		v.bad(path+".adapter", "required for a hosted app: how its events reach its bot")
		return
	}
	ad, ap := a.Adapter, path+".adapter"
	switch ad.Type {
	case "http", "messenger":
	case "":
		v.bad(ap+".type", "required: http or messenger")
	default:
		v.bad(ap+".type", "%q is not an adapter type (known: http, messenger)", ad.Type)
	}
	if u, err := url.Parse(ad.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.bad(ap+".url", "%q is not an http(s) URL", ad.URL)
	} else if !ad.AllowLinkLocal && adapters.RefusedHost(u.Hostname()) {
		// Literal addresses and well-known names only: resolving here
		// would make the check depend on the network it runs on, and a
		// name may change later. A name that resolves to such an
		// address at run time is refused by the bot client's dialer
		// (adapters.NewClient).
		v.bad(ap+".url", "%q points at a link-local or cloud metadata address; if the bot really listens there, set allow_link_local: true", ad.URL)
	}
	v.inline(ap+".secret", ad.InlineSecret, ap+".secret_env")
	v.secret(ap+".secret_env", ad.SecretEnv, true, &ad.Secret)
	if ad.Concurrency < 1 {
		v.bad(ap+".concurrency", "must be at least 1")
	}
	if ad.MaxAttempts < 1 {
		v.bad(ap+".max_attempts", "must be at least 1")
	}
	if ad.Timeout <= 0 {
		v.bad(ap+".timeout", "must be positive")
	}
	if b := ad.Batch; b != nil {
		if b.Max < 1 || b.Max > MaxBatch {
			v.bad(ap+".batch.max", "%d: want 1 to %d deliveries per request", b.Max, MaxBatch)
		}
		if b.Wait < 0 || b.Wait > time.Second {
			v.bad(ap+".batch.wait", "%s: want 0 (send what is ready) up to 1s; a few milliseconds is the useful range", b.Wait)
		}
	}
}

func (v *validator) page(path string, p *Page, c *Config, seen map[string]bool) {
	switch {
	case p.ID == "":
		v.bad(path+".id", "required: the Facebook page id")
	case !digitsRE.MatchString(p.ID):
		v.bad(path+".id", "%q is not a page id (digits only; quote it in YAML)", p.ID)
	case seen[p.ID]:
		v.bad(path+".id", "page %s is configured twice", p.ID)
	}
	seen[p.ID] = true
	on := map[string]bool{}
	ref := func(field, name string) bool {
		if _, ok := c.App(name); !ok {
			v.bad(field, "%q is not an app in apps (known: %s)", name, strings.Join(appNames(c), ", "))
			return false
		}
		return true
	}
	switch p.Mode {
	case ModeConversationRouting, ModeLegacy:
		if p.Primary == "" {
			v.bad(path+".primary", "required in mode %s: the default app", p.Mode)
		}
	case ModeZeroConfig:
		if p.Primary != "" {
			v.bad(path+".primary", "mode zero_config has no default app; list every app under secondary")
		}
	default:
		v.bad(path+".mode", "%q is not conversation_routing, zero_config or legacy", p.Mode)
	}
	switch p.Platform {
	case PlatformMessenger:
	case PlatformInstagram:
		if p.Mode == ModeLegacy {
			v.bad(path+".mode", "Instagram has no legacy Handover Protocol: use conversation_routing or zero_config")
		}
	default:
		v.bad(path+".platform", "%q is not messenger or instagram", p.Platform)
	}
	if p.Primary != "" && ref(path+".primary", p.Primary) {
		on[p.Primary] = true
	}
	for i, s := range p.Secondary {
		f := fmt.Sprintf("%s.secondary[%d]", path, i)
		switch {
		case on[s]:
			v.bad(f, "%q is listed twice on this page", s)
		case ref(f, s):
			on[s] = true
		}
	}
	if p.Takeover == nil && on[p.Primary] {
		p.Takeover = []string{p.Primary} // the default app may take by default
	}
	for i, s := range p.Takeover {
		f := fmt.Sprintf("%s.takeover[%d]", path, i)
		if !on[s] {
			v.bad(f, "%q is not on this page (primary or secondary)", s)
		}
	}
	for name, tok := range p.Tokens {
		f := path + ".tokens." + name
		a, ok := c.App(name)
		switch {
		case !ok:
			v.bad(f, "%q is not an app in apps", name)
			continue
		case !on[name]:
			v.bad(f, "%q is not on this page (primary or secondary)", name)
		case !a.Hosted():
			v.bad(f, "%q is external: Baton does not call the Graph API for it", name)
		}
		v.inline(f+".token", tok.InlineToken, f+".token_env")
		v.inline(f+".api_token", tok.InlineAPIToken, f+".api_token_env")
		v.secret(f+".token_env", tok.TokenEnv, true, &tok.Token)
		v.secret(f+".api_token_env", tok.APITokenEnv, false, &tok.APIToken)
		p.Tokens[name] = tok
	}
	v.rules(path+".rules", p, on)
	for name := range on {
		if a, _ := c.App(name); a.Hosted() {
			if _, ok := p.Tokens[name]; !ok {
				v.bad(path+".tokens", "hosted app %q has no page access token here (tokens.%s.token_env)", name, name)
			}
		}
	}
}

func appNames(c *Config) []string {
	var out []string
	for _, a := range c.Apps {
		out = append(out, a.Name)
	}
	return out
}
