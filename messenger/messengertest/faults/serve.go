package faults

import (
	"encoding/json"
	"net/http"

	"github.com/batonhq/baton/messenger"
	"github.com/batonhq/baton/messenger/messengertest/control"
)

// Serve answers a call the way the fault that fired says, in place of
// the platform's own answer. apply carries the call out for the apply_
// modes; record adds the call to the platform's log. The call is recorded once its outcome is decided, before any
// delay or hold, so that a test which sees the client fail finds it in
// Calls.
func (fi *Injector) Serve(w http.ResponseWriter, r *http.Request, f *Firing, call *Call, record func(Call), apply func() (int, any)) {
	call.Fault = f.ID
	if f.Mode.applies() {
		status, _ := apply()
		call.Applied = status/100 == 2
	}
	if !f.Mode.answers() {
		record(*call)
		if f.Mode == FaultDrop {
			fi.wait(r.Context(), f.Delay)
		} else {
			fi.hold(r.Context(), f.Delay)
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
	record(*call)
	if !fi.wait(r.Context(), f.Delay) {
		dropConnection(w) // the client left, or the platform closed
		return
	}
	if len(f.Body) == 0 {
		control.WriteJSON(w, f.Status, messenger.ErrorEnvelope{Error: call.Error})
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
