# tcplab — the two commands: `make demo` (as root) and `make test`.
GO      ?= go
BIN     := bin/tcplab
PKGS    := ./...

.PHONY: all build demo test test-short race vet fmt bench fuzz golden clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tcplab

## demo: run the article's two experiments over real TUN devices (needs root)
demo: build
	./$(BIN) run close --explain
	./$(BIN) run shutdown --explain

## test: the whole suite (root tests run when root; CI runs exactly this)
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 8m $(PKGS)

## golden: rewrite golden files after an intended change (review the diff!)
golden:
	$(GO) test -count=1 $(PKGS) -update

## fuzz: fuzz the scenario parser for a while (FUZZTIME=10m for longer)
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./demo/scenario

fmt:
	gofmt -l -w .

clean:
	rm -rf bin
