module github.com/batonhq/baton

go 1.26.8

require (
	github.com/gorilla/mux v1.8.1
	github.com/looplab/fsm v1.0.3
	go.etcd.io/bbolt v1.5.0
	go.uber.org/goleak v1.3.0
	go.uber.org/zap v1.28.0
	go.yaml.in/yaml/v3 v3.0.6
)

require (
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/sys v0.45.0 // indirect
)
