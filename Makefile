# gpunode — build, run and test. The quick start in README.md uses `make run` and `make test`.
GO        ?= go
BIN       := bin/gpunode
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/gpunode/gpunode/version.Version=$(VERSION)
RUN_DIR   ?= $(CURDIR)/var
PREFIX    ?= /usr/local
# Tool builds (kubo, solc) are cached here and reused by every test run on this machine.
export GPUNODE_CACHE ?= $(HOME)/.cache/gpunode

.PHONY: all build run demo test test-unit test-go setup setup-run lint install deb generate contracts clean

all: build

## build: compile bin/gpunode
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gpunode

## setup: install and start what is missing for the tests too (Debian packages, dockerd,
## cached tools); root
setup:
	bash scripts/setup.sh test

## setup-run: install and start only what running a node needs (Debian packages, dockerd);
## needs root only when something is missing
setup-run:
	bash scripts/setup.sh run

## run: install what is missing, build, and start a node on embedded defaults; prints how
## long it took to reach "node ready"
run: export GPUNODE_RUN_START := $(shell date +%s)
run:
	@echo "gpunode: checking what running a node needs (scripts/setup.sh run)"
	@$(MAKE) --no-print-directory setup-run
	@echo "gpunode: building $(BIN)"
	@$(MAKE) --no-print-directory build
	bash scripts/run.sh $(BIN) $(RUN_DIR)

## demo: the example job through the whole loop on this machine (dev chain, registry,
## a researcher's, a provider's and two validators' nodes); prints where the checkpoint is
demo: setup build
	bash scripts/demo.sh $(BIN) $(RUN_DIR)/demo

## test: install what is missing, then run the unit tier and every test suite (the
## integration tier: build tag integration)
test: setup
	@$(MAKE) --no-print-directory test-unit
	bash scripts/test.sh

## test-unit: the unit tier, the tests that need no external component (no dockerd,
## registry, kubo, Prometheus, chromium, root); under a minute, prints its time
test-unit:
	bash scripts/test-unit.sh

## gpu-check: on a GPU rig, check the node's GPU paths against the real driver, toolkit and
## engine (build tag gpu) and write the report to gpu-check-report.txt; see the README's
## "First run on a GPU rig"
gpu-check:
	GPUNODE_RIG_REPORT=$(CURDIR)/gpu-check-report.txt GPUNODE_RIG_LOG=$(CURDIR)/gpu-check.log \
		$(GO) test -tags gpu -count=1 -timeout 60m -run TestRig ./runtime/gpu/rigcheck/ \
		|| { echo "rig check found problems: see gpu-check-report.txt"; exit 1; }

## lint: formatting and vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

## install: binary, systemd unit and a default config (root)
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/gpunode
	install -D -m 0644 systemd/gpunode.service $(DESTDIR)/etc/systemd/system/gpunode.service
	install -D -m 0644 systemd/gpunode.sysusers $(DESTDIR)/usr/lib/sysusers.d/gpunode.conf
	@if [ ! -e $(DESTDIR)/etc/gpunode/gpunode.toml ]; then \
		install -d $(DESTDIR)/etc/gpunode && \
		$(BIN) config default > $(DESTDIR)/etc/gpunode/gpunode.toml && \
		echo "wrote /etc/gpunode/gpunode.toml"; \
	else echo "kept existing /etc/gpunode/gpunode.toml"; fi

## deb: a Debian package of this build in bin/ (binary, unit, sysusers, config as a
## conffile); DEB_VERSION overrides the version taken from git
deb: build
	bash scripts/deb.sh $(BIN) bin

## generate: regenerate committed generated files
generate: contracts

## contracts: compile the Solidity contracts (solc-js pinned in contracts/package-lock.json)
## and regenerate contracts/build and the abigen v2 bindings
contracts:
	bash scripts/setup.d/30-contracts.sh
	$(GO) run ./contracts/internal/gen -dir contracts

clean:
	rm -rf bin var
