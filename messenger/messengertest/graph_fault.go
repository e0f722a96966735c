package messengertest

import (
	"encoding/json"
	"net/http"

	"github.com/batonhq/baton/messenger"
)

// serveFault answers a call the way the fault that fired says, in place of
// the platform's own answer. apply carries the call out for the apply_
// modes. The call is recorded once its outcome is decided, before any
// delay or hold, so that a test which sees the client fail finds it in
// Calls.
func (g *graphAPI) serveFault(w http.ResponseWriter, r *http.Request, f *firing, call *Call, apply func() (int, any)) {
	call.Fault = f.ID
	if f.Mode.applies() {
		status, _ := apply()
		call.Applied = status/100 == 2
	}
	if !f.Mode.answers() {
		g.calls.record(*call)
		if f.Mode == FaultDrop {
			g.faults.wait(r.Context(), f.Delay)
		} else {
			g.faults.hold(r.Context(), f.Delay)
		}
		dropConnection(w)
		return
	}

	call.Status = f.Status
	if len(f.Body) == 0 {
		call.Error = errorFor(f.Status)
	} else {
		var env messenger.ErrorEnvelope
		if json.Unmarshal(f.Body, &env) == nil && env.Error != nil {
			env.Error.HTTPStatus = f.Status
			call.Error = env.Error
		}
	}
	call.Success = f.Status/100 == 2 && call.Error == nil
	g.calls.record(*call)
	if !g.faults.wait(r.Context(), f.Delay) {
		dropConnection(w) // the client left, or the platform closed
		return
	}
	if len(f.Body) == 0 {
		writeJSON(w, f.Status, messenger.ErrorEnvelope{Error: call.Error})
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(f.Status)
	_, _ = w.Write(f.Body)
}

// dropConnection closes the call's connection without an answer. Where the
// connection cannot be taken over (HTTP/2), the handler aborts instead,
// which resets the stream.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
