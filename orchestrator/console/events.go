package console

import (
	"errors"
	"net/http"

	"github.com/batonhq/baton/web/live"
)

// maxStreams bounds the open event streams (each holds a connection and
// a goroutine).
const maxStreams = 64

// events serves GET /console/api/events, server-sent events: "change"
// whenever something the console shows may have changed (web/live).
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	switch err := c.hub.Serve(w, r); {
	case errors.Is(err, live.ErrTooMany), errors.Is(err, live.ErrClosed):
		http.Error(w, "too many open consoles, or Baton is reloading", http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
