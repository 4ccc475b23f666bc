# buildkite_exporter: build, test, lint, demo and release targets.
#
# Tools are installed at pinned versions into .tools/ (never from PATH), so a
# fresh machine with only Go gets the same results as CI. Nothing is skipped
# silently: a missing tool is installed, a failed install fails the target.

GO        ?= go
BIN       := buildkite_exporter
FAKE      := .build/buildkite-fake
PKG       := github.com/buildkite-exporter/buildkite_exporter
TOOLS     := $(CURDIR)/.tools

# Pinned tool versions.
#
# promtool comes from Debian's prometheus package by default (PROMTOOL_SOURCE=deb):
# apt-get download + dpkg-deb -x into .tools (no root, no system install), a few
# seconds. Building it from source (PROMTOOL_SOURCE=go, for machines without
# apt) compiles all of Prometheus' service discovery: more than 12 CPU-minutes
# cold, too slow for a 2-core CI with a 20-minute budget. Debian keeps only the
# current package of a release: when a security update replaces it, the
# download fails loudly; bump PROMTOOL_DEB_VERSION (apt-cache policy prometheus).
PROMTOOL_SOURCE       ?= deb
PROMTOOL_DEB_VERSION  ?= 2.42.0+ds-5+deb12u1
PROMTOOL_VERSION      ?= v0.316.0
GOLANGCI_LINT_VERSION ?= v2.15.0
PROMTOOL      := $(TOOLS)/promtool
GOLANGCI_LINT := $(TOOLS)/golangci-lint
ifeq ($(PROMTOOL_SOURCE),deb)
PROMTOOL_PIN := deb-$(PROMTOOL_DEB_VERSION)
else ifeq ($(PROMTOOL_SOURCE),go)
PROMTOOL_PIN := go-$(PROMTOOL_VERSION)
else
$(error PROMTOOL_SOURCE must be deb or go, not $(PROMTOOL_SOURCE))
endif
# Stamp files record which version is in .tools, so bumping a pin reinstalls.
PROMTOOL_STAMP      := $(TOOLS)/.promtool-$(PROMTOOL_PIN)
GOLANGCI_LINT_STAMP := $(TOOLS)/.golangci-lint-$(GOLANGCI_LINT_VERSION)

FUZZTIME  ?= 3000x

# Version information, stamped into github.com/prometheus/common/version.
# The Dockerfile sets the same variables from build args (dockerfile_test.go
# checks that the two lists agree).
VERSION    ?= $(shell cat VERSION)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER ?= $(shell id -un 2>/dev/null || echo unknown)@$(shell uname -n 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)

VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(BUILD_USER) \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)

DOCKER       ?= docker
DOCKER_IMAGE ?= buildkite-exporter/buildkite_exporter
DOCKER_TAG   ?= $(VERSION)

# The alert, dashboard and end-to-end checks are a Go module of their own in
# e2e/ (it replaces the exporter module with ../), so that their heavy
# test-only dependencies stay out of the exporter's go.mod. Every Go target
# runs in both modules: the root, then $(CHECKS_MOD).
CHECKS_MOD := e2e

# Alert rule files for promtool check rules; promtool unit-test files
# (*_test.yml, *.test.yml) are not rule files.
RULE_FILES := $(filter-out %_test.yml %.test.yml %_test.yaml %.test.yaml,$(wildcard alerts/*.yml alerts/*.yaml))

# Go sources for the gofmt check (tools and build output excluded).
GOFILES = $(shell find . \( -path ./.tools -o -path ./.build -o -path ./.git \) -prune -o -name '*.go' -print)

.DEFAULT_GOAL := build

.PHONY: all
all: lint test build

## build: the exporter binary (static, version stamped) in ./buildkite_exporter
.PHONY: build
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

## fake: the fake Buildkite API used by demo and the scrape check
.PHONY: fake
fake:
	@mkdir -p .build
	CGO_ENABLED=0 $(GO) build -trimpath -o $(FAKE) ./client/buildkitetest/cmd/buildkite-fake

## test: everything a contributor must pass
.PHONY: test
test: vet fmt-check tidy-check unit-test fuzz check-metrics

# The e2e tag adds the end-to-end suite, so it is vetted too.
.PHONY: vet
vet:
	$(GO) vet ./...
	cd $(CHECKS_MOD) && $(GO) vet -tags e2e ./...

.PHONY: fmt-check
fmt-check:
	@echo ">> gofmt -l"
	@out="$$(gofmt -l $(GOFILES))"; \
	if [ -n "$$out" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$out"; exit 1; fi

.PHONY: tidy-check
tidy-check:
	$(GO) mod tidy -diff
	cd $(CHECKS_MOD) && $(GO) mod tidy -diff

# The checks module's alert tests (e2e/alerts) run promtool from $$PROMTOOL
# and fail without it; without the e2e tag it runs no end-to-end test.
.PHONY: unit-test
unit-test: $(PROMTOOL_STAMP)
	$(GO) test -race ./...
	cd $(CHECKS_MOD) && PROMTOOL=$(PROMTOOL) $(GO) test -race ./...

.PHONY: fuzz
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## check-metrics: promtool check metrics on a real scrape against the fake API
.PHONY: check-metrics
check-metrics: build fake $(PROMTOOL_STAMP)
	PROMTOOL=$(PROMTOOL) ./scripts/check-metrics.sh ./$(BIN) $(FAKE)

## lint: go vet, golangci-lint, promtool check rules
.PHONY: lint
lint: vet golangci-lint check-rules

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT_STAMP)
	$(GOLANGCI_LINT) run ./...
	cd $(CHECKS_MOD) && $(GOLANGCI_LINT) run --config $(CURDIR)/.golangci.yml ./...

.PHONY: check-rules
check-rules: $(PROMTOOL_STAMP)
ifeq ($(wildcard alerts),)
	@echo "NOTE: no alerts/ directory yet: no rule files to check"
else
	@if [ -z "$(RULE_FILES)" ]; then echo "alerts/ exists but holds no rule files (alerts/*.yml)"; exit 1; fi
	$(PROMTOOL) check rules $(RULE_FILES)
endif

## e2e: the end-to-end suite, package e2e of the checks module (build tag e2e)
.PHONY: e2e
e2e: build
	cd $(CHECKS_MOD) && $(GO) test -count=1 -tags e2e .

## e2e-deps: install Debian's Prometheus, Alertmanager and Chromium for e2e (root)
.PHONY: e2e-deps
e2e-deps:
	scripts/install-e2e-deps.sh

## bench: all benchmarks with allocations, then the scrape cost table (BENCHMARKS.md)
.PHONY: bench
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...
	$(GO) run ./cmd/benchtable

## soak: the long soak of the collector (SOAK_COLLECTIONS collections, one simulated minute apart)
.PHONY: soak
soak:
	SOAK_COLLECTIONS=$${SOAK_COLLECTIONS:-200000} $(GO) test -run '^TestSoak$$' -count=1 -timeout 60m -v ./collector/

## demo: the exporter against a simulated fleet on loopback; Ctrl-C stops both
.PHONY: demo
demo: build fake
	./scripts/demo.sh ./$(BIN) $(FAKE)

## docker: the container image (needs a Docker engine)
.PHONY: docker
docker:
	$(DOCKER) build \
		--build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$(REVISION) \
		--build-arg BRANCH=$(BRANCH) \
		--build-arg BUILD_USER=$(BUILD_USER) \
		--build-arg BUILD_DATE=$(BUILD_DATE) \
		-t $(DOCKER_IMAGE):$(DOCKER_TAG) .

## prometheusrule: a PrometheusRule manifest from alerts/ on stdout
.PHONY: prometheusrule
prometheusrule:
	@./scripts/prometheusrule.sh

## tools: install the pinned tools into .tools
.PHONY: tools promtool golangci-lint-install
tools: promtool golangci-lint-install
promtool: $(PROMTOOL_STAMP)
golangci-lint-install: $(GOLANGCI_LINT_STAMP)

$(PROMTOOL_STAMP):
	@mkdir -p $(TOOLS)
	@rm -f $(TOOLS)/.promtool-* $(PROMTOOL)
ifeq ($(PROMTOOL_SOURCE),deb)
	@echo ">> installing promtool from Debian's prometheus $(PROMTOOL_DEB_VERSION) into .tools"
	@command -v apt-get >/dev/null || { echo "apt-get not found: use make PROMTOOL_SOURCE=go (builds promtool $(PROMTOOL_VERSION) from source)"; exit 1; }
	rm -rf $(TOOLS)/prometheus-deb && mkdir -p $(TOOLS)/prometheus-deb
	cd $(TOOLS)/prometheus-deb && apt-get download -q 'prometheus=$(PROMTOOL_DEB_VERSION)' || { \
		echo "cannot download prometheus=$(PROMTOOL_DEB_VERSION): run apt-get update, or bump PROMTOOL_DEB_VERSION (apt-cache policy prometheus)"; exit 1; }
	dpkg-deb -x $(TOOLS)/prometheus-deb/prometheus_*.deb $(TOOLS)/prometheus-deb/root
	ln -sf prometheus-deb/root/usr/bin/promtool $(PROMTOOL)
	ln -sf prometheus-deb/root/usr/bin/prometheus $(TOOLS)/prometheus
else
	@echo ">> building promtool $(PROMTOOL_VERSION) into .tools (cold: 10+ minutes on 2 cores)"
	GOBIN=$(TOOLS) $(GO) install github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION)
endif
	$(PROMTOOL) --version
	@touch $@

$(GOLANGCI_LINT_STAMP):
	@mkdir -p $(TOOLS)
	@echo ">> installing golangci-lint $(GOLANGCI_LINT_VERSION) into .tools"
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@rm -f $(TOOLS)/.golangci-lint-*
	@touch $@

## clean: remove build output and installed tools
.PHONY: clean
clean:
	rm -rf $(BIN) .build $(TOOLS)

## help: list the targets
.PHONY: help
help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)
