// Package deploy holds what runs Baton outside a checkout: the compose
// file, the systemd unit, the containers' configs (one Baton, or three
// replicas behind HAProxy), the Grafana dashboard and the Prometheus
// alerts (the Dockerfile is at the repository's root,
// the build's context). It has no code; its tests parse and check each
// file, since most of them cannot run where the tests do.
package deploy
