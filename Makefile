# The two commands a fresh machine needs are `make run` (the whole pipeline on the local stack,
# on sample images) and `make test` (every test). Everything they need is installed here.

GO        ?= go
FAUXQS    := localstack/fauxqs
GOTESTFLAGS ?= -count=1 -timeout 15m

.PHONY: run test deps up down env vet fmt-check bench build clean

## run: bring the local stack up, run analyzer and indexer on the sample images, print what
## was indexed and what failed, and shut everything down.
run: deps
	$(GO) run ./cmd/demo

## test: vet, format check and every test (unit and integration on the local stack), never
## from the test cache: the integration tests depend on processes the cache cannot see.
test: deps vet fmt-check
	$(GO) test $(GOTESTFLAGS) ./...

## deps: install the pinned SQS stand-in (npm lock file) and the Go modules.
deps: $(FAUXQS)/node_modules/.installed
	$(GO) mod download

$(FAUXQS)/node_modules/.installed: $(FAUXQS)/package.json $(FAUXQS)/package-lock.json
	@command -v node >/dev/null || { echo "missing prerequisite: node: install Node.js 20 or newer (apt-get install nodejs)"; exit 1; }
	@command -v npm >/dev/null || { echo "missing prerequisite: npm: install npm (apt-get install npm)"; exit 1; }
	cd $(FAUXQS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

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

## bench: the benchmarks, figures written to docs/benchmarks.md by hand from bench.txt.
bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./... | tee bench.txt

build:
	$(GO) build -o bin/ ./cmd/...
	$(GO) build -o bin/dlq-replay ./dlq-replay

clean:
	rm -rf bin .stack bench.txt
