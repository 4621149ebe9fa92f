# tcplab — the two commands: `make demo` (as root) and `make test`.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN     := bin/tcplab
PKGS    := ./...

.PHONY: all build demo test vet fmt bench fuzz fuzz-check golden figures view-figure clean bpf

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
	$(GO) test -race -count=1 -timeout 9m $(PKGS)

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

## view-figure: the README's screenshot of `tcplab view` on the close
## experiment (memory wire), taken by headless Chromium (Debian's chromium
## package); the page selects the RST (#select=rst). --once stops the server
## once the page has its data.
VIEW_PNG ?= demo/figures/view.png
CHROMIUM ?= chromium
view-figure: build
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	./$(BIN) run close --wire memory --format json > "$$tmp/close.jsonl" 2>/dev/null && \
	{ (cd "$$tmp" && exec timeout 120 "$(CURDIR)/$(BIN)" view --once close.jsonl > url) & } && \
	for i in $$(seq 200); do grep -q http "$$tmp/url" && break; sleep 0.05; done && \
	url=$$(grep -o 'http://[^ ]*' "$$tmp/url") && \
	$(CHROMIUM) --headless --disable-gpu --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$$tmp/chromium" \
		$$([ "$$(id -u)" = 0 ] && echo --no-sandbox) --window-size=1400,900 --virtual-time-budget=5000 \
		--screenshot="$(CURDIR)/$(VIEW_PNG)" "$${url}#select=rst" 2>/dev/null && \
	wait && echo "wrote $(VIEW_PNG)"

## fuzz: run every fuzzer of the repository for FUZZTIME each, one after
## the other (FUZZTIME=10m for longer). A new fuzzer is one more
## "package:FuzzName" word in FUZZERS; `make fuzz-check` fails when a
## Fuzz function in the tree is missing from the list.
FUZZTIME ?= 20s
FUZZERS := \
	./demo/scenario:FuzzParse \
	./demo/scenario:FuzzNumber \
	./demo/scenario:FuzzDuration \
	./stack:FuzzParseSegment \
	./demo/pcapng:FuzzRoundTrip \
	./demo/explain:FuzzExplain \
	./demo/replay:FuzzReplay \
	./demo/view:FuzzLoad
## Go 1.26's fuzz coordinator can fail a target with a bare "context
## deadline exceeded" at the -fuzztime boundary on a busy machine
## (go.dev/issue/75804, fixed in Go 1.27): such a run, with no failing input
## written, is run once more; anything else fails.
fuzz: fuzz-check
	@for f in $(FUZZERS); do \
		for try in 1 2; do \
			echo "== fuzz $${f#*:} in $${f%%:*} for $(FUZZTIME)"; \
			out=$$($(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) "$${f%%:*}" 2>&1); st=$$?; \
			echo "$$out"; \
			[ $$st -eq 0 ] && break; \
			if [ $$try -eq 1 ] && echo "$$out" | grep -q "context deadline exceeded" && ! echo "$$out" | grep -q "Failing input written\|panic:"; then \
				echo "== $${f#*:}: the fuzztime boundary race of go.dev/issue/75804, no failing input: once more"; \
				continue; \
			fi; \
			exit 1; \
		done; \
	done

fuzz-check:
	@missing=$$(grep -rlE --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*\(' . | while read file; do \
		pkg=./$$(dirname "$${file#./}"); \
		for fn in $$(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' "$$file"); do \
			case " $(FUZZERS) " in *" $$pkg:$$fn "*) ;; *) echo "$$pkg:$$fn";; esac; \
		done; done); \
	if [ -n "$$missing" ]; then echo "fuzzers missing from FUZZERS in the Makefile: $$missing"; exit 1; fi

## bench: bulk TCP, one stream, 1 MiB per op (BENCHTIME=1024x: 1 GiB per
## case): gVisor hosts over TUN and over memory, trace off and on, a gVisor
## host sending to a kernel socket with the kernel sampled or observed by
## eBPF, against kernel sockets over veth, at MTU 1500 and 65000 (needs root; about 2 min
## on 2 cores; BENCHCOUNT=3 averages three runs); then the latency of a
## program's socket calls with the call tracer (tun/calltrace) off and on
## (CALLBENCHTIME round trips of four calls). Raw output in bench.out,
## tables on stdout. Then explain's summary of a synthetic capture of
## EXPLAIN_CONNS connections (100,000: about 1.1 GB, written to a temporary
## directory first) on two cores: seconds, peak heap and peak RSS, raw in
## bench-explain.out.
BENCHTIME  ?= 1024x
EXPLAIN_CONNS ?= 100000
BENCHCOUNT ?= 1
CALLBENCHTIME ?= 200000x
bench:
	{ $(GO) test -run '^$$' -bench BenchmarkBulk -benchtime $(BENCHTIME) -count $(BENCHCOUNT) -timeout 20m ./tun/ ./tun/kernelpeer/; \
	  $(GO) test -run '^$$' -bench BenchmarkCallLatency -benchtime $(CALLBENCHTIME) -count $(BENCHCOUNT) -timeout 10m ./tun/calltrace/; } | tee bench.out | $(GO) run ./cmd/benchtable
	GOMAXPROCS=2 EXPLAIN_BENCH_CONNS=$(EXPLAIN_CONNS) EXPLAIN_BENCH_SEGS=7 $(GO) test -run '^$$' -bench BenchmarkExplain -benchtime 1x -timeout 20m ./demo/explain | tee bench-explain.out

## bpf: recompile the eBPF programs of tun/ktrace (bpf/ktrace.c) and
## tun/calltrace (bpf/calltrace.c), which share tun/bpfinclude/socktypes.h, and regenerate the committed .go/.o with bpf2go (needs clang, libbpf-dev:
## apt-get install clang libbpf-dev)
bpf:
	cd tun/ktrace && $(GO) generate .
	cd tun/calltrace && $(GO) generate .

fmt:
	gofmt -l -w .

clean:
	rm -rf bin
