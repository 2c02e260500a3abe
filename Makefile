# The two commands a fresh machine needs are `make run` (the whole pipeline on the local stack,
# on sample images) and `make test` (every test). Everything they need is installed here.

SHELL     := /bin/bash
GO        ?= go
FAUXQS    := devstack/fauxqs
GOTESTFLAGS ?= -count=1 -timeout 15m

DEPLOY    := deploy

.PHONY: run test deps tools up down env vet fmt-check bench build clean tf-env

## run: bring the local stack up, run analyzer and indexer on the sample images, print what
## was indexed and what failed, and shut everything down.
run: deps
	$(GO) run ./cmd/demo

## test: vet, format check and every test (unit and integration on the local stack), never
## from the test cache: the integration tests depend on processes the cache cannot see. Then
## the deploy module's tests: the Terraform checks and the policy-vs-calls table.
test: deps tools vet fmt-check
	$(GO) test $(GOTESTFLAGS) ./...
	cd $(DEPLOY) && $(GO) test $(GOTESTFLAGS) ./...

## deps: install the pinned SQS stand-in (npm lock file) and the Go modules (the product's
## and the deploy module's).
deps: $(FAUXQS)/node_modules/.installed
	$(GO) mod download
	cd $(DEPLOY) && $(GO) mod download

$(FAUXQS)/node_modules/.installed: $(FAUXQS)/package.json $(FAUXQS)/package-lock.json
	@command -v node >/dev/null || { echo "missing prerequisite: node: install Node.js 20 or newer (apt-get install nodejs)"; exit 1; }
	@command -v npm >/dev/null || { echo "missing prerequisite: npm: install npm (apt-get install npm)"; exit 1; }
	cd $(FAUXQS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## tools: the Debian packages the tests need (scripts/debs.txt), installed when missing.
tools:
	bash scripts/install-debs.sh

## up / down / env: the local stack on its own, for a shell.
up: deps
	$(GO) run ./cmd/devstack up

down:
	$(GO) run ./cmd/devstack down

env:
	@$(GO) run ./cmd/devstack env

vet:
	$(GO) vet ./...
	cd $(DEPLOY) && $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './devstack/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## bench: every benchmark, with the iteration counts the docs quote (docs/analyzer.md,
## docs/indexer.md, dlq-replay/README.md); output in bench.txt, and the analyzer process
## figures as markdown rows in bench-analyzer.md. Takes about 10 minutes.
bench: deps
	set -o pipefail; \
	BENCH_OUT=bench-analyzer.md $(GO) test ./bench -run '^$$' -bench . -benchtime 2000x -timeout 30m | tee bench.txt && \
	$(GO) test ./pkg/analyzer -run '^$$' -bench . -benchtime 2000x -timeout 30m | tee -a bench.txt && \
	$(GO) test ./pkg/indexstore -run '^$$' -bench Apply -benchtime 3000x -count 3 | tee -a bench.txt && \
	$(GO) test ./pkg/indexer -run '^$$' -bench Indexer -benchtime 3000x -count 3 | tee -a bench.txt && \
	$(GO) test ./dlq-replay/sqsdlq ./dlq-replay/pubsubdlq -run '^$$' -bench Replay -benchtime 10x -count 3 | tee -a bench.txt

## tf-env: the binaries' settings from `terraform output -json` of deploy/terraform:
## TF_OUTPUT=out.json (default: run terraform, or tofu, in deploy/terraform), FORMAT=configmap
## (default) or FORMAT=env BINARY=analyzer. Writes to standard output.
TF_OUTPUT ?=
FORMAT    ?= configmap
BINARY    ?=
tf-env:
	@set -o pipefail; \
	if [ -n "$(TF_OUTPUT)" ]; then cat "$(TF_OUTPUT)"; \
	elif command -v terraform >/dev/null; then terraform -chdir=$(DEPLOY)/terraform output -json; \
	elif command -v tofu >/dev/null; then tofu -chdir=$(DEPLOY)/terraform output -json; \
	else echo "tf-env: give TF_OUTPUT=FILE (the output of terraform output -json), or install terraform or tofu" >&2; exit 1; fi | \
	(cd $(DEPLOY) && $(GO) run ./terraform/envfile -format $(FORMAT) $(if $(BINARY),-binary $(BINARY)))

build:
	$(GO) build -o bin/ ./cmd/...
	$(GO) build -o bin/dlq-replay ./dlq-replay

clean:
	rm -rf bin .stack bench.txt bench-analyzer.md
