package messengertest

import "github.com/batonhq/baton/messenger/messengertest/faults"

// The fault injector lives in package faults; these are its names here.
type (
	// Fault makes the Graph calls that match it fail (see faults.Fault).
	Fault = faults.Fault
	// FaultMode is what a fault does to a call it matches.
	FaultMode = faults.FaultMode
)

// Fault modes (see package faults).
const (
	FaultRespond          = faults.FaultRespond
	FaultApplyThenRespond = faults.FaultApplyThenRespond
	FaultTimeout          = faults.FaultTimeout
	FaultApplyThenTimeout = faults.FaultApplyThenTimeout
	FaultDrop             = faults.FaultDrop
)
