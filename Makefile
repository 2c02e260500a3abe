# The two commands a fresh machine needs are `make run` (the whole pipeline on the local stack,
# on sample images) and `make test` (every test). Everything they need is installed here.

SHELL     := /bin/bash
GO        ?= go
FAUXQS    := devstack/fauxqs
BROWSER   := e2e/browser
GOTESTFLAGS ?= -count=1 -timeout 15m
# Test artefacts (the console's browser screenshots) go under ARTIFACTS/_artifacts/.
ARTIFACTS ?= $(CURDIR)/.artifacts

# The image tests compile the binaries for two platforms inside the test run: from an empty
# build cache that takes minutes on its own.
DEPLOY_TESTFLAGS ?= -count=1 -timeout 30m

DEPLOY    := deploy
# The project's own stand-ins (S3 with notifications, Azure AI Vision): a module of their own,
# so that their dependencies (gofakes3 and its own) are never the product's.
STANDINS  := standins
# make test builds the stand-ins' binary once, here, for every test process (DEVSTACK_STANDINS),
# instead of each test binary building and linking its own copy.
STANDINS_BIN = $(abspath $(ARTIFACTS))/bin/standins

.PHONY: run test deploy-prebuild vet-root emulator-defects deps browser-deps tools up down env vet fmt-check bench bench-dlq bench-scaleout build clean tf-env images chaos

## run: bring the local stack up, run analyzer and indexer on the sample images, print what
## was indexed and what failed, start the web console and print its address, and shut
## everything down; KEEP=1 keeps it all up until Ctrl-C.
run: deps
	$(GO) run ./cmd/demo $(if $(KEEP),-keep)

## test: vet, format check and every test (unit and integration on the local stack), never
## from the test cache: the integration tests depend on processes the cache cannot see. Then
## the stand-ins module's tests (the S3 and Vision stand-ins themselves), then the deploy
## module's tests: the Terraform checks and the policy-vs-calls table, the alert and
## recording rules (promtool check and unit tests) and the Grafana dashboard, parsed with
## Prometheus's own PromQL parser, the Kubernetes manifests, KEDA's scaler on the SQS stand-in,
## the container images (built, and run with podman against the local stack).
## While the product's tests run, `make deploy-prebuild` runs beside them at the lowest CPU
## priority (renice 19), its output in ARTIFACTS/deploy-prebuild.log: from an empty build cache
## it compiles what the deploy module's tests would otherwise compile after them (KEDA,
## Kubernetes, the image binaries for both platforms). Its failure fails make test.
test: deps browser-deps tools vet-root fmt-check
	rm -rf $(ARTIFACTS)/_artifacts && mkdir -p $(ARTIFACTS)
	cd $(STANDINS) && $(GO) build -o $(STANDINS_BIN) ./cmd/standins
	@status=0; \
	( renice -n 19 -p $$BASHPID >/dev/null; $(DEPLOY_PREBUILD) ) >$(ARTIFACTS)/deploy-prebuild.log 2>&1 & pre=$$!; \
	DEVSTACK_STANDINS=$(STANDINS_BIN) $(GO) test $(GOTESTFLAGS) -artifacts -outputdir $(ARTIFACTS) ./... || status=$$?; \
	for f in $$(find $(ARTIFACTS)/_artifacts -name '*.png' 2>/dev/null | sort); do echo "test artefact: $$f"; done; \
	if ! wait $$pre; then cat $(ARTIFACTS)/deploy-prebuild.log; echo "deploy-prebuild failed"; status=1; fi; \
	exit $$status
	cd $(STANDINS) && $(GO) test $(GOTESTFLAGS) ./...
	cd $(DEPLOY) && DEVSTACK_STANDINS=$(STANDINS_BIN) $(GO) test $(DEPLOY_TESTFLAGS) ./...

## deploy-prebuild: what the deploy module's tests compile, without running them: go vet of
## the module (which compiles every package its tests import, KEDA's scalers and Kubernetes
## among them) and the images' binaries for every platform (cmd/imagebuild into a temporary
## folder, removed after), so that later builds come from the build cache.
## DEPLOY_PREBUILD is that as one shell command, for make test to run in the background.
DEPLOY_PREBUILD = cd $(DEPLOY) && $(GO) vet ./... && out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	$(GO) run ./cmd/imagebuild --out "$$out" --version prebuild >/dev/null
deploy-prebuild:
	$(DEPLOY_PREBUILD)

## deps: install the pinned SQS stand-in (npm lock file) and the Go modules (the product's,
## the stand-ins' and the deploy module's).
deps: $(FAUXQS)/node_modules/.installed
	$(GO) mod download
	cd $(STANDINS) && $(GO) mod download
	cd $(DEPLOY) && $(GO) mod download

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
	$(GO) run ./cmd/devstack up

down:
	$(GO) run ./cmd/devstack down

env:
	@$(GO) run ./cmd/devstack env

vet: vet-root
	cd $(DEPLOY) && $(GO) vet ./...

## vet-root: go vet of the product's module and the stand-ins' (make test runs the deploy
## module's vet in the background instead, see deploy-prebuild).
vet-root:
	$(GO) vet ./...
	$(GO) vet -tags emulatordefects ./internal/devstack
	cd $(STANDINS) && $(GO) vet ./...

## emulator-defects: the tests that assert defects of the Pub/Sub emulator itself (plain
## clients, no project code; internal/devstack/defects_test.go): they show whether the
## emulator still has them. Not in make test: the defects show only part of the time.
emulator-defects: deps
	CI=true $(GO) test -tags emulatordefects -count=1 -v -run 'OnTheEmulator$$' ./internal/devstack

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './devstack/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

## bench: every benchmark, with the iteration counts the docs quote (docs/analyzer.md,
## docs/indexer.md, docs/scaleout.md, dlq-replay/README.md, docs/console.md); output in bench.txt, the analyzer
## process figures as markdown rows in bench-analyzer.md, then bench-scaleout. Takes about
## 40 minutes (the indexer's recovery from Firestore outages about 20 of them).
bench: deps
	set -o pipefail; \
	BENCH_OUT=bench-analyzer.md $(GO) test ./bench -run '^$$' -bench . -benchtime 2000x -timeout 30m | tee bench.txt && \
	$(GO) test ./pkg/analyzer -run '^$$' -bench . -benchtime 2000x -timeout 30m | tee -a bench.txt && \
	$(GO) test ./pkg/indexstore -run '^$$' -bench Apply -benchtime 3000x -count 3 | tee -a bench.txt && \
	$(GO) test ./pkg/indexer -run '^$$' -bench Indexer -benchtime 3000x -count 3 | tee -a bench.txt && \
	$(GO) test ./pkg/indexer -run '^$$' -bench Recovery -benchtime 1x -count 2 -timeout 60m | tee -a bench.txt && \
	$(GO) test ./dlq-replay/sqsdlq ./dlq-replay/pubsubdlq -run '^$$' -bench Replay -benchtime 10x -count 3 | tee -a bench.txt && \
	DLQ_BENCH_SIZES=2000,10000 $(GO) test ./dlq-replay/bench -run '^$$' -bench LargeDLQ -benchtime 1x -timeout 30m | tee -a bench.txt && \
	$(GO) test ./pkg/console -run '^$$' -bench . -benchtime 50x -count 3 | tee -a bench.txt
	$(MAKE) bench-scaleout

## bench-dlq: dlq-replay on DLQs of 10,000 and 100,000 messages (stats, filtered replay, export,
## import as processes of their own): msgs/s, peak memory and the lease window, as markdown rows
## in bench-dlq.md (see dlq-replay/README.md). Takes about 4 minutes.
bench-dlq: deps
	set -o pipefail; \
	DLQ_BENCH_SIZES=10000,100000 DLQ_BENCH_OUT=bench-dlq.md $(GO) test ./dlq-replay/bench -run '^$$' -bench LargeDLQ -benchtime 1x -timeout 60m | tee bench-dlq.txt

## bench-scaleout: K analyzer replicas (K = 1, 2, 4) and 2 indexers on one local stack: use
## of one shared Vision quota and the share of 429s, throughput and scaling efficiency vs K
## (docs/scaleout.md), as markdown rows in bench-scaleout.md and output in bench-scaleout.txt;
## plus the adaptive rate's fair share in simulated time up to 8 replicas. About 8 minutes.
bench-scaleout: deps
	set -o pipefail; \
	BENCH_OUT=bench-scaleout.md $(GO) test ./e2e/scaleout -run '^$$' -bench ScaleOut -benchtime 1x -timeout 60m | tee bench-scaleout.txt && \
	$(GO) test ./pkg/ratelimit -run '^$$' -bench AdaptiveQuotaShare -benchtime 5x | tee -a bench-scaleout.txt

## chaos: the chaos suite (docs/chaos.md): N files (default 10,000) through the binaries
## built from the tree on the local stack while analyzers and indexers are SIGKILLed every
## 20-60 s, Vision fails, throttles and goes away for 30 s, Firestore restarts with its data and
## Pub/Sub is cut off;
## then every image is checked through the real clients. SEED repeats a run's schedule. Exits
## non-zero on any loss or duplicate. About N/25 s of faults plus the tail.
N    ?= 10000
SEED ?= 0
chaos: deps
	$(GO) run ./cmd/chaos -n $(N) -seed $(SEED)

## tf-env: deploy/terraform's outputs, from `terraform output -json` (TF_OUTPUT=out.json;
## default: run terraform, or tofu, in deploy/terraform), into what the binaries read: the
## kustomize component deploy/k8s/overlays/RUNTIME/terraform that overlay takes (RUNTIME is the
## output's; OUT=DIR writes it elsewhere), or with FORMAT=env BINARY=analyzer one binary's env
## file on standard output.
TF_OUTPUT ?=
FORMAT    ?= kustomize
BINARY    ?=
OUT       ?=
tf-env:
	@set -o pipefail; \
	if [ -n "$(TF_OUTPUT)" ]; then cat "$(TF_OUTPUT)"; \
	elif command -v terraform >/dev/null; then terraform -chdir=$(DEPLOY)/terraform output -json; \
	elif command -v tofu >/dev/null; then tofu -chdir=$(DEPLOY)/terraform output -json; \
	else echo "tf-env: give TF_OUTPUT=FILE (the output of terraform output -json), or install terraform or tofu" >&2; exit 1; fi | \
	(cd $(DEPLOY) && $(GO) run ./terraform/envfile -format $(FORMAT) $(if $(BINARY),-binary $(BINARY)) $(if $(OUT),-out $(abspath $(OUT))))

## images: the container images (analyzer, indexer, console, tools) for linux/amd64 and linux/arm64,
## reproducibly, as OCI layouts in .build/images (plus docker archives of this machine's
## platform for podman load); prints their digests and sizes (docs/deploy.md).
IMAGEFLAGS ?=
images: tools
	cd $(DEPLOY) && $(GO) run ./cmd/imagebuild --out ../.build/images --archive $(IMAGEFLAGS)

build:
	$(GO) build -o bin/ ./cmd/...
	$(GO) build -o bin/dlq-replay ./dlq-replay
	cd $(STANDINS) && $(GO) build -o ../bin/ ./cmd/standins

clean:
	rm -rf bin .build .stack .artifacts bench.txt bench-analyzer.md bench-dlq.md bench-dlq.txt bench-scaleout.txt bench-scaleout.md
