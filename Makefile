# The two commands a fresh machine needs are `make run` (the whole pipeline on the local stack,
# on sample images) and `make test` (every test). Everything they need is installed here.

SHELL     := /bin/bash
GO        ?= go
FAUXQS    := localstack/fauxqs
BROWSER   := e2e/browser
GOTESTFLAGS ?= -count=1 -timeout 15m
# Test artefacts (the console's browser screenshots) go under ARTIFACTS/_artifacts/.
ARTIFACTS ?= $(CURDIR)/.artifacts

.PHONY: run test deps browser-deps tools up down env vet fmt-check bench build clean

## run: bring the local stack up, run analyzer and indexer on the sample images, print what
## was indexed and what failed, start the web console and print its address, and shut
## everything down; KEEP=1 keeps it all up until Ctrl-C.
run: deps
	$(GO) run ./cmd/demo $(if $(KEEP),-keep)

## test: vet, format check and every test (unit and integration on the local stack), never
## from the test cache: the integration tests depend on processes the cache cannot see.
test: deps browser-deps tools vet fmt-check
	rm -rf $(ARTIFACTS)/_artifacts && mkdir -p $(ARTIFACTS)
	@status=0; $(GO) test $(GOTESTFLAGS) -artifacts -outputdir $(ARTIFACTS) ./... || status=$$?; \
	for f in $$(find $(ARTIFACTS)/_artifacts -name '*.png' 2>/dev/null | sort); do echo "test artefact: $$f"; done; \
	exit $$status

## deps: install the pinned SQS stand-in (npm lock file) and the Go modules.
deps: $(FAUXQS)/node_modules/.installed
	$(GO) mod download

## browser-deps: the pinned axe-core of the console's browser test (npm lock file).
browser-deps: $(BROWSER)/node_modules/.installed

# An npm folder of the project, installed from its lock file.
%/node_modules/.installed: %/package.json %/package-lock.json
	@command -v node >/dev/null || { echo "missing prerequisite: node: install Node.js 20 or newer (apt-get install nodejs)"; exit 1; }
	@command -v npm >/dev/null || { echo "missing prerequisite: npm: install npm (apt-get install npm)"; exit 1; }
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

## tools: the Debian packages the tests need (scripts/debs.txt), installed when missing.
tools:
	bash scripts/install-debs.sh

## up / down / env: the local stack on its own, for a shell.
up: deps
	$(GO) run ./cmd/localstack up

down:
	$(GO) run ./cmd/localstack down

env:
	@$(GO) run ./cmd/localstack env

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './localstack/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## bench: every benchmark, with the iteration counts the docs quote (docs/analyzer.md,
## docs/indexer.md, dlq-replay/README.md, docs/console.md); output in bench.txt, and the analyzer process
## figures as markdown rows in bench-analyzer.md. Takes about 10 minutes.
bench: deps
	set -o pipefail; \
	BENCH_OUT=bench-analyzer.md $(GO) test ./bench -run '^$$' -bench . -benchtime 2000x -timeout 30m | tee bench.txt && \
	$(GO) test ./pkg/analyzer -run '^$$' -bench . -benchtime 2000x -timeout 30m | tee -a bench.txt && \
	$(GO) test ./pkg/index -run '^$$' -bench Apply -benchtime 3000x -count 3 | tee -a bench.txt && \
	$(GO) test ./pkg/indexer -run '^$$' -bench Indexer -benchtime 3000x -count 3 | tee -a bench.txt && \
	$(GO) test ./dlq-replay/sqsdlq ./dlq-replay/pubsubdlq -run '^$$' -bench Replay -benchtime 10x -count 3 | tee -a bench.txt && \
	$(GO) test ./pkg/console -run '^$$' -bench . -benchtime 50x -count 3 | tee -a bench.txt

build:
	$(GO) build -o bin/ ./cmd/...
	$(GO) build -o bin/dlq-replay ./dlq-replay

clean:
	rm -rf bin .stack .artifacts bench.txt bench-analyzer.md
