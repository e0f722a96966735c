package messengertest

import (
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
)

// The /_platform/faults endpoints (see Fault):
//
//	POST   /_platform/faults       add one; 201 with the fault and its id
//	GET    /_platform/faults       {"faults": [...]}, the active ones
//	DELETE /_platform/faults       clear all; {"cleared": n}
//	DELETE /_platform/faults/{id}  clear one; {"cleared": 1}, or 404

func (s *controlSurface) addFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := decodeBody(r, &f); err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	f, err := s.faults.add(f)
	if err != nil {
		ctlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

func (s *controlSurface) listFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"faults": s.faults.list()})
}

func (s *controlSurface) clearFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{"cleared": s.faults.clear()})
}

func (s *controlSurface) clearFault(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !s.faults.clearOne(id) {
		ctlError(w, http.StatusNotFound, fmt.Errorf("no active fault %q", id))
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"cleared": 1})
}
