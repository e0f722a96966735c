package lab

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The balancer sends each request to the next backend in turn, body and
// headers intact, answers with the backend's answer, and skips a backend
// that refuses the connection.
func TestBalancerRoundRobinSkipsRefused(t *testing.T) {
	defer goleak.VerifyNone(t)
	got := map[string]int{}
	backend := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got[name]++ // one request at a time below
			w.Header().Set("X-Backend", name)
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, r.Header.Get("X-Sig")+" "+string(b))
		}))
	}
	a, b := backend("a"), backend("b")
	defer a.Close()
	defer b.Close()
	refused, err := FreeAddr() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	lb := NewBalancer([]string{strings.TrimPrefix(a.URL, "http://"), refused, strings.TrimPrefix(b.URL, "http://")}, 4)
	defer lb.Close()
	url, stop, err := ServeLocal(lb)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	var order []string
	for i := range 6 {
		req, _ := http.NewRequest(http.MethodPost, url+"/webhooks/x", strings.NewReader("body"))
		req.Header.Set("X-Sig", "sig")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || string(body) != "sig body" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		order = append(order, resp.Header.Get("X-Backend"))
	}
	// a; the refused one's turn, so b; a again...
	if strings.Join(order, "") != "ababab" || got["a"] != 3 || got["b"] != 3 {
		t.Errorf("backends in order %v, counts %v", order, got)
	}
}
