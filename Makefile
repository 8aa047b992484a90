# gemma3 — the README's two commands:
#   make run     build, then run build/examples/gemma3-run on $(MODEL)
#   make test    build, then run every test with ctest (what .ci/run does)
# Also: make deps | build | bench | clean.  Overridable: BUILD_DIR, BUILD_TYPE,
# MODEL, ARGS (extra arguments for gemma3-run), JOBS, CTEST_JOBS, CMAKE_ARGS.

BUILD_DIR  ?= build
BUILD_TYPE ?= Release
MODEL      ?= tests/fixtures/tiny_global_last
ARGS       ?=
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= 2
CMAKE_ARGS ?=

MAKEFLAGS += --no-print-directory

RUN_EXE := $(BUILD_DIR)/examples/gemma3-run

.PHONY: all deps build test run bench clean

all: build

deps:
	@bash scripts/install-deps.sh
	@bash scripts/fetch-model.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(CTEST_JOBS)

run: build
	$(RUN_EXE) $(MODEL) $(ARGS)

bench: build
	@set -e; for b in $(BUILD_DIR)/bench/bench_*; do \
	  [ -x "$$b" ] || continue; echo "== $$b"; "$$b" $(ARGS); done

clean:
	rm -rf $(BUILD_DIR)
