# Switchboard — `make help` lists the targets.

SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

GO          ?= go
BIN         := $(CURDIR)/bin
# Tool versions, pinned. `make tools` installs them into ./bin.
BUF_VERSION                ?= v1.75.0
PROTOC_GEN_GO_VERSION      ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.2
GRPCURL_VERSION            ?= v1.9.4
STATICCHECK_VERSION        ?= v0.8.2

SERVICES := chat-handler config workflow-runner distribution sessions outbound-sender reporting twilio-sim devstack

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n\nTargets:\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: run
run: ## Start everything on this machine (embedded NATS + FerretDB, all services, Twilio emulator, demo tenant)
	$(GO) run ./services/devstack/cmd/devstack

.PHONY: run-split
run-split: ## Start every service as its own process (the real binaries) against one embedded NATS and FerretDB, as production runs them
	$(GO) run ./services/devstack/cmd/run-split -bin $(BIN)

.PHONY: test
test: check-generated ## Run every test (unit, integration, end-to-end, browser) and check generated code is current
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) fuzz-smoke

.PHONY: test-short
test-short: ## Run the tests without the generated-code check
	$(GO) test -count=1 ./...

# A count, not a duration: a time budget fails ("context deadline
# exceeded") when replaying a large cached corpus outlasts it.
FUZZTIME ?= 20000x

.PHONY: fuzz-smoke
fuzz-smoke: ## Run each fuzz target briefly (FUZZTIME=5m for a longer run)
	@for t in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -h '^func Fuzz' $$t/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
	    echo "fuzz $$t $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$t || exit 1; \
	  done; \
	done

.PHONY: bench
bench: ## Run the benchmarks and load drivers; prints figures and ratios
	./scripts/bench.sh

.PHONY: build
build: ## Build every service binary into ./bin
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do $(GO) build -o $(BIN)/$$s ./services/$$s/cmd/$$s || exit 1; done
	$(GO) build -o $(BIN)/switchboardctl ./services/config/cmd/switchboardctl

.PHONY: tools
tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## Install the pinned code generators into ./bin

$(BIN)/buf:
	GOBIN=$(BIN) GOWORK=off $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) GOWORK=off $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) GOWORK=off $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

.PHONY: grpcurl
grpcurl: $(BIN)/grpcurl ## Install grpcurl into ./bin
$(BIN)/grpcurl:
	GOBIN=$(BIN) GOWORK=off $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

.PHONY: generate
generate: tools ## Lint the protos and regenerate proto/gen/go
	cd proto && PATH=$(BIN):$$PATH buf lint && PATH=$(BIN):$$PATH buf generate

.PHONY: check-generated
check-generated: tools ## Fail if proto/gen/go is not what the protos generate
	./scripts/check-generated.sh

.PHONY: lint
lint: $(BIN)/staticcheck ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l services pkg proto/gen)" || (gofmt -l services pkg proto/gen; echo "gofmt needed"; exit 1)
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

$(BIN)/staticcheck:
	GOBIN=$(BIN) GOWORK=off $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: clean
clean: ## Remove ./bin and the local data of make run (.data)
	rm -rf $(BIN) .data

# make chaos: the fault-injection harness (services/devstack/internal/chaos).
DURATION ?= 1m
SEED     ?= 0
OPS      ?= 0

.PHONY: chaos
chaos: ## Fault-injection soak: NATS cluster, every service as processes, kills/pauses; DURATION=1h, SEED=n, OPS=n
	$(GO) run ./services/devstack/cmd/chaos -bin $(BIN) -duration $(DURATION) -seed $(SEED) -ops $(OPS)

# make soak: a steady load without faults (about 50 customer messages/s:
# 51 customers, 13 agents answering) for SOAK, sampling every process's
# memory, goroutines and open files and every stream's size each minute;
# the samples stay in .data/soak-<time>/samples.csv. Every service runs as
# its own processes (two replicas of four), on SOAK_NODES NATS servers:
# one by default, as three (R3) at this rate take more than 2 cores.
SOAK ?= 1h
SOAK_NODES ?= 1

.PHONY: soak
soak: ## Steady ~50 msg/s for SOAK=1h without faults, resources sampled each minute (.data/soak-*/samples.csv); SOAK_NODES=3 for R3
	$(GO) run ./services/devstack/cmd/chaos -bin $(BIN) -nodes $(SOAK_NODES) -duration $(SOAK) -seed $(SEED) -customers 51 -agents 13 -capacity 4 -fault-every 0 -drain 10m -sample-every 1m -data .data/soak-$$(date +%Y%m%d-%H%M%S)
