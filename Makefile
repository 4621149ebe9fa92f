# tcplab — the two commands: `make demo` (as root) and `make test`.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin/tcplab
PKGS    := ./...

.PHONY: all build demo test vet fmt bench fuzz golden figures clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tcplab

## demo: run the article's two experiments over real TUN devices (needs root)
demo: build
	./$(BIN) run close --explain
	./$(BIN) run shutdown --explain

## test: the whole suite (root tests run when root; CI runs exactly this);
## first: go.mod and go.sum must be tidy (go mod tidy -diff prints what it
## would change and fails)
test:
	$(GO) mod tidy -diff
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 8m $(PKGS)

## golden: rewrite golden files after an intended change (review the diff!)
GOLDEN_PKGS := ./demo/scenario ./demo/render
golden:
	$(GO) test -count=1 $(GOLDEN_PKGS) -update $(if $(wildcard demo/diff/*_test.go),&& $(GO) test -count=1 ./demo/diff -update)

## figures: the README's SVG ladders of the two experiments (memory wire,
## virtual time: the same picture every time)
figures: build
	mkdir -p demo/figures
	./$(BIN) run close --wire memory --format json --svg demo/figures/close.svg >/dev/null
	./$(BIN) run shutdown --wire memory --format json --svg demo/figures/shutdown.svg >/dev/null

## fuzz: fuzz the scenario parser for a while (FUZZTIME=10m for longer)
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./demo/scenario

## bench: bulk TCP, one stream, 1 MiB per op (BENCHTIME=1024x: 1 GiB per
## case): gVisor hosts over TUN and over memory, trace off and on, against
## kernel sockets over veth, at MTU 1500 and 65000 (needs root; about 1 min
## on 2 cores; BENCHCOUNT=3 averages three runs). Raw output in bench.out,
## table on stdout.
BENCHTIME  ?= 1024x
BENCHCOUNT ?= 1
bench:
	$(GO) test -run '^$$' -bench BenchmarkBulk -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 20m ./tun/ | tee bench.out | $(GO) run ./cmd/benchtable

fmt:
	gofmt -l -w .

clean:
	rm -rf bin
