//go:build !linux

package main

import "go.uber.org/zap"

// raiseOpenFiles does nothing off Linux: the limits and their names
// differ, and Go raises the soft limit itself where it can.
func raiseOpenFiles(*zap.Logger) {}
