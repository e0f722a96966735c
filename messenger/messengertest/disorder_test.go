package messengertest_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/messenger/messengertest"
)

// Meta's disorder, each chosen by a setting or a control call and
// reproducible under a seed (REFERENCE §0.1, §2.1, §3.3).

func (e *env) holdWebhooks(action, app string) {
	e.t.Helper()
	var body any
	if app != "" {
		body = map[string]string{"app": app}
	}
	if st := e.ctl("POST", "/_platform/webhooks/"+action+"?wait=true", body, nil); st != 200 {
		e.t.Fatalf("%s %q: %d", action, app, st)
	}
}

// queueMessages makes the person write n messages, one second apart,
// without waiting for their webhooks; message i says "i".
func (e *env) queueMessages(n int) {
	e.t.Helper()
	for i := range n {
		if st := e.ctl("POST", "/_platform/pages/"+pageID+"/users/"+psid+"/messages", map[string]string{"text": strconv.Itoa(i)}, nil); st != 200 {
			e.t.Fatalf("message %d: %d", i, st)
		}
		e.advance("1s")
	}
}

// texts lists the texts of the messages a bot received, in arrival order,
// after checking each kept the timestamp of when it was written.
func texts(t *testing.T, rs []received, start time.Time) []string {
	t.Helper()
	var out []string
	for _, r := range rs {
		m := r.Event.Message
		if m == nil || m.IsEcho {
			t.Fatalf("not a message: %s", r.Event.Kind())
		}
		i, _ := strconv.Atoi(m.Text)
		if want := start.Add(time.Duration(i) * time.Second).UnixMilli(); r.Event.Timestamp != want {
			t.Fatalf("message %q has timestamp %d, want %d", m.Text, r.Event.Timestamp, want)
		}
		out = append(out, m.Text)
	}
	return out
}

func inOrder(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

// isPermutation reports whether got holds 0..n-1 once each.
func isPermutation(got []string, n int) bool {
	s := slices.Clone(got)
	slices.SortFunc(s, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	return slices.Equal(s, inOrder(n))
}

var testStart = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC) // newEnv's clock

func TestWebhookHoldChoosesOrderAcrossApps(t *testing.T) {
	e := newEnv(t)
	// bot-b's standby copy first, bot-a's messaging copy later.
	e.holdWebhooks("hold", "bot-a")
	e.say("hello") // ?wait=true: held webhooks do not count
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "" || b != "standby:message" {
		t.Fatalf("while bot-a is held: a %q, b %q", a, b)
	}
	e.settle()
	e.holdWebhooks("release", "bot-a")
	if a := kinds(e.a.take()); a != "messaging:message" {
		t.Fatalf("after release bot-a got %q", a)
	}
	h := e.hooks("")
	if len(h) != 2 || h[0].App != "bot-b" || h[1].App != "bot-a" {
		t.Fatalf("records %+v", h)
	}

	// Every app, by id too.
	e.holdWebhooks("hold", "")
	e.say("again")
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "" || b != "" {
		t.Fatalf("while all are held: a %q, b %q", a, b)
	}
	e.holdWebhooks("release", botB)
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "" || b != "standby:message" {
		t.Fatalf("after releasing bot-b: a %q, b %q", a, b)
	}
	e.holdWebhooks("release", "")
	if a := kinds(e.a.take()); a != "messaging:message" {
		t.Fatalf("after releasing all: a %q", a)
	}
	if st := e.ctl("POST", "/_platform/webhooks/hold", map[string]string{"app": "nobody"}, nil); st != 404 {
		t.Fatalf("unknown app: %d", st)
	}
}

func TestWebhookOrderShuffledIsSeeded(t *testing.T) {
	const n = 8
	run := func(seed int64) []string {
		e := newEnv(t, func(c *messengertest.Config) {
			c.Settings.WebhookOrder = "shuffled"
			c.Settings.Seed = seed
		})
		e.holdWebhooks("hold", "bot-a")
		e.queueMessages(n)
		e.holdWebhooks("release", "bot-a")
		got := texts(t, e.a.take(), testStart)
		if !isPermutation(got, n) {
			t.Fatalf("seed %d: bot-a got %v, want each of %d messages once", seed, got, n)
		}
		if b := e.b.take(); len(b) != n {
			t.Fatalf("bot-b got %d webhooks", len(b))
		}
		return got
	}
	first := run(7)
	if slices.Equal(first, inOrder(n)) {
		t.Fatalf("shuffled kept the order: %v", first)
	}
	if again := run(7); !slices.Equal(again, first) {
		t.Fatalf("same seed, another order: %v then %v", first, again)
	}

	// per_app (the default) keeps each app's order.
	e := newEnv(t)
	e.holdWebhooks("hold", "bot-a")
	e.queueMessages(n)
	e.holdWebhooks("release", "bot-a")
	if got := texts(t, e.a.take(), testStart); !slices.Equal(got, inOrder(n)) {
		t.Fatalf("per_app order: %v", got)
	}
}

func TestWebhookWindowBoundsOvertaking(t *testing.T) {
	// A window of 1 is the order queued, shuffled or not.
	e := newEnv(t, func(c *messengertest.Config) {
		c.Settings.WebhookOrder = "shuffled"
		c.Settings.WebhookWindow = 1
	})
	e.holdWebhooks("hold", "bot-a")
	e.queueMessages(5)
	e.holdWebhooks("release", "bot-a")
	if got := texts(t, e.a.take(), testStart); !slices.Equal(got, inOrder(5)) {
		t.Fatalf("window 1: %v", got)
	}
}

func TestWebhookDelay(t *testing.T) {
	const d = 60 * time.Millisecond
	e := newEnv(t, func(c *messengertest.Config) {
		c.Settings.WebhookDelay = messengertest.DelayRange{Min: d, Max: d}
	})
	start := time.Now()
	e.say("slow") // settles only once the delayed webhooks were delivered
	if el := time.Since(start); el < d {
		t.Fatalf("delivered after %s, want at least %s", el, d)
	}
	if a, b := kinds(e.a.take()), kinds(e.b.take()); a != "messaging:message" || b != "standby:message" {
		t.Fatalf("a %q, b %q", a, b)
	}
}

func TestWebhookDelayedWebhooksBatchAndSettle(t *testing.T) {
	// Webhooks that queue during a delay go in one POST (max_batch), and
	// settle waits for all of them.
	e := newEnv(t, func(c *messengertest.Config) {
		c.Settings.WebhookDelay = messengertest.DelayRange{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}
		c.Settings.MaxBatch = 10
		c.Settings.Seed = 3
	})
	e.queueMessages(6)
	e.settle()
	if got := texts(t, e.a.take(), testStart); !slices.Equal(got, inOrder(6)) {
		t.Fatalf("bot-a got %v", got)
	}
	if b := e.b.take(); len(b) != 6 {
		t.Fatalf("bot-b got %d", len(b))
	}
}

func TestWebhookRepeat(t *testing.T) {
	t.Run("always", func(t *testing.T) {
		e := newEnv(t, func(c *messengertest.Config) { c.Settings.WebhookRepeat = 1 })
		e.say("twice") // settle waits for the repeats too
		a := e.a.take()
		if kinds(a) != "messaging:message messaging:message" || string(a[0].Body) != string(a[1].Body) {
			t.Fatalf("bot-a got %q", kinds(a))
		}
		if a[0].Event.Message.Mid != a[1].Event.Message.Mid {
			t.Fatal("a repeat is the same event")
		}
		h := e.hooks("?app=bot-a")
		if len(h) != 2 || h[0].Repeat || !h[1].Repeat || h[0].Body != h[1].Body {
			t.Fatalf("records %+v", h)
		}
	})
	t.Run("seeded", func(t *testing.T) {
		run := func() string {
			e := newEnv(t, func(c *messengertest.Config) {
				c.Settings.WebhookRepeat = 0.5
				c.Settings.Seed = 11
			})
			for i := range 12 {
				e.say(strconv.Itoa(i))
			}
			var flags []string
			for _, h := range e.hooks("?app=bot-a") {
				flags = append(flags, fmt.Sprint(h.Repeat))
			}
			return strings.Join(flags, " ")
		}
		first := run()
		n := strings.Count(first, "true")
		if n == 0 || n == 12 {
			t.Fatalf("12 webhooks at 0.5 gave %d repeats: %s", n, first)
		}
		if again := run(); again != first {
			t.Fatalf("same seed, other repeats:\n%s\n%s", first, again)
		}
	})
}

func TestBatchOrderShuffled(t *testing.T) {
	const n = 6
	run := func() []string {
		e := newEnv(t, func(c *messengertest.Config) {
			c.Settings.MaxBatch = 10
			c.Settings.BatchOrder = "shuffled"
			c.Settings.Seed = 5
		})
		e.holdWebhooks("hold", "bot-a")
		e.queueMessages(n)
		e.holdWebhooks("release", "bot-a")
		a := e.a.take()
		if h := e.hooks("?app=bot-a"); len(h) != 1 || len(h[0].Kinds) != n {
			t.Fatalf("want one POST of %d entries, got %+v", n, h)
		}
		return texts(t, a, testStart) // timestamps unchanged
	}
	first := run()
	if !isPermutation(first, n) || slices.Equal(first, inOrder(n)) {
		t.Fatalf("batch order %v", first)
	}
	if again := run(); !slices.Equal(again, first) {
		t.Fatalf("same seed, other batch order: %v then %v", first, again)
	}

	// sent (the default) keeps the entries in order.
	e := newEnv(t, func(c *messengertest.Config) { c.Settings.MaxBatch = 10 })
	e.holdWebhooks("hold", "bot-a")
	e.queueMessages(n)
	e.holdWebhooks("release", "bot-a")
	if got := texts(t, e.a.take(), testStart); !slices.Equal(got, inOrder(n)) {
		t.Fatalf("sent order: %v", got)
	}
}
