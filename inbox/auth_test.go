package inbox

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Guesses sent at once count while bcrypt checks them: a burst must not
// get more than maxFailures tries at a password because each was looked
// at before any had failed.
func TestInboxLimitCountsSignInsUnderWay(t *testing.T) {
	f := newFixture(t)
	f.stop()
	// A real cost, so that the comparisons overlap as they do in use.
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	f.start(options(f.in.opt.Baton, f.data, string(h)))
	const burst = 3 * maxFailures
	codes := make([]int, burst)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest("POST", "http://inbox.test/login", bytes.NewReader([]byte(`{"name":"anna","password":"guess"}`)))
			r.Header.Set("Content-Type", "application/json")
			r.RemoteAddr = "192.0.2.9:5000"
			w := httptest.NewRecorder()
			start.Wait()
			f.in.auth.login(w, r)
			codes[i] = w.Code
		}()
	}
	start.Done()
	wg.Wait()
	got := map[int]int{}
	for _, c := range codes {
		got[c]++
	}
	if got[http.StatusUnauthorized] != maxFailures || got[http.StatusTooManyRequests] != burst-maxFailures {
		t.Fatalf("%d guesses at once: %v, want %d checked (401), the rest refused (429)", burst, got, maxFailures)
	}
}

// An unknown name is checked against a hash as dear as the dearest
// agent's, so that its answer comes no sooner than a wrong password's.
func TestInboxUnknownNameCostsAsMuchAsAPassword(t *testing.T) {
	f := newFixture(t)
	f.stop()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost+1)
	if err != nil {
		t.Fatal(err)
	}
	f.start(options(f.in.opt.Baton, f.data, string(h)))
	if cost, err := bcrypt.Cost(f.in.auth.dummy); err != nil || cost != bcrypt.DefaultCost+1 {
		t.Fatalf("the unknown names' hash: cost %d %v, want %d", cost, err, bcrypt.DefaultCost+1)
	}
}
