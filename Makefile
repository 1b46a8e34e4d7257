# pgwarm — see README.md. `make test` is what CI runs.
GO        ?= go
BIN       := bin
LAB       := examples/lab/lab.sh
LAB_SUITE ?= bookworm
export LAB_SUITE

.PHONY: all build lint test test-unit test-hostile test-lab test-e2e test-matrix lab-up lab-down demo vet bench-wal bench-plan bench-ops clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

# Lint, before the tests in CI: formatting, vet, staticcheck (pinned in
# go.mod as a tool: go tool staticcheck) and shellcheck (Debian's package;
# warnings and errors) on the project's shell scripts and on the scripts
# apply embeds and runs on hosts (POSIX sh).
SHELL_SCRIPTS := .ci/run $(wildcard examples/lab/*.sh bench/*/run.sh)
lint: vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: not formatted:"; echo "$$unformatted"; exit 1; fi
	$(GO) tool staticcheck ./...
	@command -v shellcheck >/dev/null || { echo "lint: shellcheck is not installed (apt-get install shellcheck)"; exit 1; }
	shellcheck -S warning $(SHELL_SCRIPTS)
	shellcheck -S warning -s sh apply/scripts/*.sh

# Unit tests: seconds, no Docker.
test-unit: vet
	$(GO) test -race -short -count=1 ./...

# Integration tests against the lab: required, never skipped.
test-lab: build lab-up
	PGWARM_LAB_REQUIRED=1 $(GO) test -count=1 -p 1 -timeout 75m -run 'Lab' ./...

# Hostile input: the peak-RSS test of every pgwarm-wal process on crafted
# files, then each fuzz target for a short while (FUZZTIME each). The fuzz
# targets' seeds also run in test-unit; here they explore.
FUZZTIME ?= 20s
FUZZ_TARGETS := FuzzServe:./wal/serve FuzzDecode:./wal/walfile FuzzParseName:./wal/segname FuzzInventoryRender:./templates
test-hostile:
	$(GO) test -count=1 -run 'TestBoundedMemory' ./cmd/pgwarm-wal/
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$${t%%:*}$$" -fuzztime=$(FUZZTIME) $${t#*:} || exit 1; \
	done

test: test-unit test-hostile test-lab

# The end-to-end lab tests alone on one suite: LAB_SUITE=trixie make test-e2e
test-e2e: build
	PGWARM_LAB_REQUIRED=1 $(GO) test -count=1 -p 1 -timeout 60m -run 'Lab' ./e2e/

# Every end-to-end test on every suite (PostgreSQL 13, 15, 17): about an hour.
test-matrix:
	for s in bullseye bookworm trixie; do LAB_SUITE=$$s $(MAKE) test-e2e || exit 1; done

lab-up:
	bash $(LAB) up

lab-down:
	bash $(LAB) down

demo: build lab-up
	bash examples/lab/demo.sh

bench-wal: build
	bash bench/wal/run.sh

bench-plan: build lab-up
	bash bench/plan/run.sh

bench-ops: build
	bash bench/ops/run.sh

clean:
	rm -rf $(BIN)
