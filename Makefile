# gemma3 — the README's two commands:
#   make run     build, fetch the default model, then chat with it (build/examples/gemma3-cli chat);
#                with PROMPT="..." it answers that one prompt instead
#   make test    build, then run every test with ctest (what .ci/run does)
# Also: make deps | build | bench | clean.  Overridable: BUILD_DIR, BUILD_TYPE,
# MODEL, PROMPT, ARGS (extra arguments for gemma3-cli), JOBS, CTEST_JOBS, CMAKE_ARGS.

BUILD_DIR  ?= build
BUILD_TYPE ?= Release
MODEL      ?= models/gemma-3-270m-q4_k_m.gguf
PROMPT     ?=
ARGS       ?=
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= 2
CMAKE_ARGS ?=

MAKEFLAGS += --no-print-directory

RUN_EXE := $(BUILD_DIR)/examples/gemma3-cli

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
ifeq ($(strip $(PROMPT)),)
	$(RUN_EXE) chat --model $(MODEL) $(ARGS)
else
	$(RUN_EXE) generate --model $(MODEL) --prompt "$(PROMPT)" $(ARGS)
endif

bench: build
	@set -e; for b in $(BUILD_DIR)/bench/bench_*; do \
	  [ -x "$$b" ] || continue; echo "== $$b"; "$$b" $(ARGS); done

clean:
	rm -rf $(BUILD_DIR)
