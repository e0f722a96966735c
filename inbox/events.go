package inbox

import (
	"errors"
	"net/http"

	"github.com/batonhq/baton/web/live"
)

// maxStreams bounds the live streams open at once.
const maxStreams = 500

// events streams "update" whenever a conversation changes (web/live).
func (in *Inbox) events(w http.ResponseWriter, r *http.Request) {
	switch err := in.hub.Serve(w, r); {
	case errors.Is(err, live.ErrTooMany), errors.Is(err, live.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "too many open pages, or the inbox is stopping")
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}
