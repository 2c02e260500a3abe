# The two commands a fresh machine needs are `make run` (the whole pipeline on the local stack,
# on sample images) and `make test` (every test). Everything they need is installed here.

SHELL     := /bin/bash
GO        ?= go
FAUXQS    := localstack/fauxqs
GOTESTFLAGS ?= -count=1 -timeout 15m
# The image tests compile the binaries for two platforms inside the test run: from an empty
# build cache that takes minutes on its own.
DEPLOY_TESTFLAGS ?= -count=1 -timeout 30m

DEPLOY    := deploy

.PHONY: run test deps tools up down env vet fmt-check bench build clean images

## run: bring the local stack up, run analyzer and indexer on the sample images, print what
## was indexed and what failed, and shut everything down.
run: deps
	$(GO) run ./cmd/demo

## test: vet, format check and every test (unit and integration on the local stack), never
## from the test cache: the integration tests depend on processes the cache cannot see. Then
## the deploy module's tests: the Kubernetes manifests, KEDA's scaler on the SQS stand-in, the
## container images (built, and run with podman against the local stack).
test: deps tools vet fmt-check
	$(GO) test $(GOTESTFLAGS) ./...
	cd $(DEPLOY) && $(GO) test $(DEPLOY_TESTFLAGS) ./...

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
	$(GO) run ./cmd/localstack up

down:
	$(GO) run ./cmd/localstack down

env:
	@$(GO) run ./cmd/localstack env

vet:
	$(GO) vet ./...
	cd $(DEPLOY) && $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './localstack/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## bench: every benchmark, with the iteration counts the docs quote (docs/analyzer.md,
## docs/indexer.md, dlq-replay/README.md); output in bench.txt, and the analyzer process
## figures as markdown rows in bench-analyzer.md. Takes about 10 minutes.
bench: deps
	set -o pipefail; \
	BENCH_OUT=bench-analyzer.md $(GO) test ./bench -run '^$$' -bench . -benchtime 2000x -timeout 30m | tee bench.txt && \
	$(GO) test ./pkg/analyzer -run '^$$' -bench . -benchtime 2000x -timeout 30m | tee -a bench.txt && \
	$(GO) test ./pkg/index -run '^$$' -bench Apply -benchtime 3000x -count 3 | tee -a bench.txt && \
	$(GO) test ./pkg/indexer -run '^$$' -bench Indexer -benchtime 3000x -count 3 | tee -a bench.txt && \
	$(GO) test ./dlq-replay/sqsdlq ./dlq-replay/pubsubdlq -run '^$$' -bench Replay -benchtime 10x -count 3 | tee -a bench.txt

## images: the container images (analyzer, indexer, tools) for linux/amd64 and linux/arm64,
## reproducibly, as OCI layouts in .build/images (plus docker archives of this machine's
## platform for podman load); prints their digests and sizes (docs/deploy.md).
IMAGEFLAGS ?=
images: tools
	cd $(DEPLOY) && $(GO) run ./cmd/imagebuild --out ../.build/images --archive $(IMAGEFLAGS)

build:
	$(GO) build -o bin/ ./cmd/...
	$(GO) build -o bin/dlq-replay ./dlq-replay

clean:
	rm -rf bin .build .stack bench.txt bench-analyzer.md
