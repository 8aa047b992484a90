# gemma3 — the README's two commands:
#   make run     build, fetch the default model, then chat with it (build/examples/gemma3-cli chat);
#                with PROMPT="..." it answers that one prompt instead
#   make test    build, then run every test with ctest (what .ci/run does), then the
#                unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer
#                (all but the real-model ones, the slowest under ASan)
# Also: make deps | build | sanitize | bench | web | web-run | clean.
#   make web       the browser demo with emscripten (scripts/build-web.sh -> build-web/web/)
#   make web-run   builds it, fetches the default model and serves the page on
#                  http://127.0.0.1:8080 with the cross-origin isolation headers (web/serve.py)
#   make sanitize  builds the tests with ASan + UBSan and runs every one, the real-model
#                  tests included.
# Overridable: BUILD_DIR,
# BUILD_TYPE, SAN_DIR, MODEL, PROMPT, ARGS (extra arguments for gemma3-cli), JOBS, CTEST_JOBS,
# CMAKE_ARGS.

BUILD_DIR  ?= build
BUILD_TYPE ?= Release
MODEL      ?= models/gemma-3-270m-q4_k_m.gguf
PROMPT     ?=
ARGS       ?=
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= 2
CMAKE_ARGS ?=
SAN_DIR    ?= build-sanitize
SAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
# leaks too; any UBSan report stops the run (-fno-sanitize-recover) with a stack
SAN_ENV    := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

MAKEFLAGS += --no-print-directory

RUN_EXE := $(BUILD_DIR)/examples/gemma3-cli

WEB_DIR    ?= build-web
WEB_PORT   ?= 8080

.PHONY: all deps build test run bench clean sanitize sanitize-build sanitize-unit web web-run

all: build

deps:
	@bash scripts/install-deps.sh
	@bash scripts/fetch-model.sh

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS)
	cmake --build $(BUILD_DIR) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(CTEST_JOBS)
	@$(MAKE) sanitize-unit

# The test suite built with ASan + UBSan (tests only: no benchmarks, no examples).
sanitize-build: deps
	cmake -S . -B $(SAN_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGEMMA3_BUILD_BENCH=OFF \
	  -DGEMMA3_BUILD_EXAMPLES=OFF -DGEMMA3_BUILD_WEB=OFF -DGEMMA3_CUDA=OFF "-DCMAKE_CXX_FLAGS=$(SAN_FLAGS)" \
	  "-DCMAKE_EXE_LINKER_FLAGS=$(SAN_FLAGS)" $(CMAKE_ARGS)
	cmake --build $(SAN_DIR) -j$(JOBS) --target gemma3_tests

# Every Catch2 test but the real-model ones ([real]), sanitized: part of make test.
sanitize-unit: sanitize-build
	@echo "== the unit tests under ASan + UBSan ($(SAN_DIR))"
	cd $(SAN_DIR)/tests && $(SAN_ENV) ./gemma3_tests "~[real]"

# Every test, sanitized, the real-model ones included (the slowest part).
sanitize: sanitize-build
	cd $(SAN_DIR)/tests && $(SAN_ENV) ./gemma3_tests

run: build
ifeq ($(strip $(PROMPT)),)
	$(RUN_EXE) chat --model $(MODEL) $(ARGS)
else
	$(RUN_EXE) generate --model $(MODEL) --prompt "$(PROMPT)" $(ARGS)
endif

bench: build
	@set -e; for b in $(BUILD_DIR)/bench/bench_*; do \
	  [ -x "$$b" ] || continue; echo "== $$b"; "$$b" $(ARGS); done

web: deps
	bash scripts/build-web.sh $(WEB_DIR)

web-run: web
	python3 web/serve.py --root $(WEB_DIR)/web --models models --port $(WEB_PORT)

clean:
	rm -rf $(BUILD_DIR) $(WEB_DIR)
