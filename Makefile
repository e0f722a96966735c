# Build, test and release Baton. `make release` cross-builds static
# binaries into dist/ with their SHA-256 sums; it needs only Go and git.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
PLATFORMS ?= linux/amd64 linux/arm64 darwin/arm64
GO ?= go
# -trimpath: no build machine paths in the binaries; -X main.version and
# main.revision: what `baton version` prints (Go's own VCS stamp, with the
# commit time and whether the tree was modified, is added where Go can
# read the repository: -buildvcs=auto); -s -w: no symbol table or DWARF,
# a third smaller.
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)

.PHONY: all build test release clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags "$(LDFLAGS)" -o baton ./cmd/baton

test:
	bash scripts/test

release: clean
	@mkdir -p dist
	@set -e; for p in $(PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; out=dist/baton-$(VERSION)-$$os-$$arch; \
		echo "build $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -buildvcs=auto -trimpath -ldflags "$(LDFLAGS)" -o $$out ./cmd/baton; \
	done
	cd dist && sha256sum baton-* > SHA256SUMS
	@cat dist/SHA256SUMS

clean:
	rm -rf dist
