package faults

import (
	"fmt"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/batonhq/baton/messenger/messengertest/control"
)

// The /_platform/faults endpoints (see Fault):
//
//	POST   /_platform/faults       add one; 201 with the fault and its id
//	GET    /_platform/faults       {"faults": [...]}, the active ones
//	DELETE /_platform/faults       clear all; {"cleared": n}
//	DELETE /_platform/faults/{id}  clear one; {"cleared": 1}, or 404

// Register adds the fault endpoints to c, the /_platform subrouter.
func (fi *Injector) Register(c *mux.Router) {
	c.HandleFunc("/faults", fi.listFaults).Methods(http.MethodGet)
	c.HandleFunc("/faults", fi.addFault).Methods(http.MethodPost)
	c.HandleFunc("/faults", fi.clearFaults).Methods(http.MethodDelete)
	c.HandleFunc("/faults/{id}", fi.clearFault).Methods(http.MethodDelete)
}

func (fi *Injector) addFault(w http.ResponseWriter, r *http.Request) {
	var f Fault
	if err := control.DecodeBody(r, &f); err != nil {
		control.Error(w, http.StatusBadRequest, err)
		return
	}
	f, err := fi.Add(f)
	if err != nil {
		control.Error(w, http.StatusBadRequest, err)
		return
	}
	control.WriteJSON(w, http.StatusCreated, f)
}

func (fi *Injector) listFaults(w http.ResponseWriter, _ *http.Request) {
	control.WriteJSON(w, http.StatusOK, map[string]any{"faults": fi.List()})
}

func (fi *Injector) clearFaults(w http.ResponseWriter, _ *http.Request) {
	control.WriteJSON(w, http.StatusOK, map[string]int{"cleared": fi.Clear()})
}

func (fi *Injector) clearFault(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if !fi.ClearOne(id) {
		control.Error(w, http.StatusNotFound, fmt.Errorf("no active fault %q", id))
		return
	}
	control.WriteJSON(w, http.StatusOK, map[string]int{"cleared": 1})
}
