# kabiguard — see README.md. Every target runs from a fresh clone on Debian 12 as root.
GO        ?= go
PREFIX    ?= /usr
DESTDIR   ?=
BIN       := bin
BINARIES  := kabiguard weak-modules kabiguard-gate
GOFLAGS_STATIC := -trimpath -ldflags='-s -w -X main.version=$(shell git describe --always --dirty 2>/dev/null || echo dev)'
# Fuzz targets run for a bounded time in `make test`: "package:Target".
FUZZ      := ./kabi/module:FuzzParse ./kabi/symvers:FuzzParse ./internal/compression:FuzzDecode ./initramfs:FuzzRead
FUZZTIME  ?= 15s

.PHONY: all build demo test unit fuzz bench vet clean

all: build

build:
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do CGO_ENABLED=0 $(GO) build $(GOFLAGS_STATIC) -o $(BIN)/$$b ./cmd/$$b || exit 1; done

# The main job on the embedded sample (testdata/sample): offline, a few seconds.
demo: build
	@sh scripts/demo.sh $(BIN)

# Everything: unit tests, real-kernel tests (they download Debian kernels into
# $${KABIGUARD_TEST_CACHE:-/var/cache/kabiguard-test} on first use; needs root and the archive),
# and bounded fuzzing.
test: vet unit fuzz

vet:
	$(GO) vet ./...

unit:
	$(GO) test -count=1 -timeout 40m ./...

fuzz:
	@for f in $(FUZZ); do pkg=$${f%%:*}; target=$${f##*:}; \
	  if ! grep -qs "func $$target(" $$pkg/*_test.go; then echo "fuzz: $$pkg has no $$target" >&2; exit 1; fi; \
	  echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
	  $(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$pkg || exit 1; done

bench: build
	@sh scripts/bench.sh

clean:
	rm -rf $(BIN)
