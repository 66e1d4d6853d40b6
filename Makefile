# wspush — see README.md. `make run` starts the server with its embedded
# defaults; `make test` runs every test, installing what the tests need.

GO       ?= go
BIN      := bin
PKGS     := ./...
CONFORMANCE_PORT ?= 9001
# VERSION is stamped into the binaries (wspush -version).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)

.PHONY: all build run test test-deps vet fmt-check conformance conformance-tls bench bench-quick clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/wspush ./cmd/wspush
	$(GO) build -o $(BIN)/wsbench ./cmd/wsbench
	$(GO) build -o $(BIN)/baseline ./bench/baseline

run:
	$(GO) run ./cmd/wspush

# test-deps installs, on a fresh Debian machine, the real components the
# tests drive (scripts/test-deps.sh): Chromium for the browser test, Node.js
# for the `ws` interop test, HAProxy and promtool. It does nothing when they
# are already there.
test-deps:
	@bash scripts/test-deps.sh
	cd web/interop && npm ci --no-audit --no-fund --loglevel=error

test: test-deps vet fmt-check
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# conformance runs the Autobahn|Testsuite fuzzing client (../shared/conformance)
# against `wspush -echo`. The suite is not in this repo; see that README.
conformance:
	$(GO) build -o $(BIN)/wspush ./cmd/wspush
	@$(BIN)/wspush -listen 127.0.0.1:$(CONFORMANCE_PORT) -admin "" -echo -compression -max-message 67108864 -log-level warn & \
	pid=$$!; sleep 0.5; \
	../shared/conformance/run ws://127.0.0.1:$(CONFORMANCE_PORT)/echo; rc=$$?; \
	kill $$pid; wait $$pid; exit $$rc

# conformance-tls is conformance over wss://, with a throwaway self-signed
# certificate (the suite's client does not verify it).
CONFORMANCE_TLS_PORT ?= 9443
CONFORMANCE_RUN ?= ../shared/conformance/run
conformance-tls:
	$(GO) build -o $(BIN)/wspush ./cmd/wspush
	@dir=$$(mktemp -d); \
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout $$dir/key.pem -out $$dir/cert.pem 2>/dev/null || exit 2; \
	$(BIN)/wspush -listen 127.0.0.1:$(CONFORMANCE_TLS_PORT) -admin "" -echo -compression -max-message 67108864 \
		-tls-cert $$dir/cert.pem -tls-key $$dir/key.pem -log-level warn & \
	pid=$$!; sleep 0.5; \
	$(CONFORMANCE_RUN) wss://127.0.0.1:$(CONFORMANCE_TLS_PORT)/echo; rc=$$?; \
	kill $$pid; wait $$pid; rm -r $$dir; exit $$rc

# bench compares wspush with bench/baseline on connect (15,000), fanout
# (10,000 subscribers, 200 x 128 B), latency at a fixed rate, slow consumers,
# churn and the latency curve, alternating the servers, and wspush's paced
# fan-out against the syscall floor (sparse); about 7 minutes. Results, HTML
# reports and curve.svg in out/bench/. See docs/benchmarks.md.
bench:
	ROUNDS=$${ROUNDS:-2} sh bench/run.sh

bench-quick:
	ROUNDS=1 sh bench/run.sh connect fanout

clean:
	rm -rf $(BIN) out testdata/out
