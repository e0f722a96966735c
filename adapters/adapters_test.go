package adapters

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		status     int
		retryAfter string
		ok, retry  bool
		after      time.Duration
	}{
		{200, "", true, false, 0},
		{204, "", true, false, 0},
		{400, "", false, false, 0},
		{401, "", false, false, 0},
		{404, "", false, false, 0},
		{408, "", false, true, 0},
		{429, "7", false, true, 7 * time.Second},
		{429, now.Add(time.Minute).Format(http.TimeFormat), false, true, time.Minute},
		{500, "", false, true, 0},
		{503, "junk", false, true, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.retryAfter != "" {
			h.Set("Retry-After", tt.retryAfter)
		}
		err := Check(tt.status, h, []byte("body"), now)
		if (err == nil) != tt.ok {
			t.Errorf("%d: err %v", tt.status, err)
			continue
		}
		if err == nil {
			continue
		}
		var ae *Error
		if !errors.As(err, &ae) || ae.Retry != tt.retry || ae.RetryAfter != tt.after || Retryable(err) != tt.retry {
			t.Errorf("%d %q: %+v", tt.status, tt.retryAfter, ae)
		}
	}
	if !Retryable(errors.New("connection refused")) {
		t.Error("transport errors must be retried")
	}
}

func TestRegistryRefusesDuplicates(t *testing.T) {
	var r Registry
	f := func(Settings) (Adapter, error) { return nil, nil }
	if err := r.Register("http", f); err != nil {
		t.Fatal(err)
	}
	if err := r.Register("http", f); err == nil {
		t.Fatal("duplicate accepted")
	}
	if _, err := r.Build("grpc", Settings{}); err == nil {
		t.Fatal("unknown type built")
	}
}

// A 3xx is a final failure that names where it pointed.
func TestCheckRedirects(t *testing.T) {
	for _, status := range []int{301, 302, 303, 307, 308} {
		h := http.Header{"Location": {"http://169.254.169.254/latest/meta-data/"}}
		err := Check(status, h, nil, time.Now())
		var ae *Error
		if !errors.As(err, &ae) || ae.Status != status || ae.Location != h.Get("Location") || Retryable(err) {
			t.Errorf("%d: %#v", status, err)
			continue
		}
		if !strings.Contains(err.Error(), h.Get("Location")) {
			t.Errorf("%d: %q does not name the Location", status, err)
		}
	}
}
