# Two set-up commands for a fresh Debian 12 clone: `make demo` and `make test`.
PRESET ?= release
BUILD := build/$(PRESET)
JOBS ?= $(shell nproc)

.PHONY: all deps configure build install test test-asan demo bench fuzz format tidy clean chaos soak check-net

all: build

deps:
	@bash tools/install-deps.sh

configure: deps
	@test -f $(BUILD)/build.ninja || cmake --preset $(PRESET) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)
	@ln -sfn $(PRESET)/bin build/bin

# Programs, asya_runtime.py and the C++ handler SDK (headers, libraries, CMake package asya).
PREFIX ?= /usr/local
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

test: build
	@ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) $(CTEST_ARGS)

test-asan:
	@$(MAKE) test PRESET=asan

.PHONY: test-tsan ci
test-tsan:
	@$(MAKE) test PRESET=tsan

# What CI runs (release tests, then the ASan+UBSan and TSan stages), with the time of each stage.
ci:
	@bash .ci/run

demo: build
	@bash tools/demo.sh

bench: build
	@bash bench/run.sh

fuzz: deps
	@cmake --preset fuzz >/dev/null && cmake --build --preset fuzz -j $(JOBS)
	@bash fuzz/run.sh

# Long no-loss checker runs (asya check) and the 30-minute soak; each writes docs/reliability.md.
chaos: build
	@python3 tools/chaos.py $(CHAOS_ARGS)

# asya check's network faults end to end on RabbitMQ (root; tests/check_net).
check-net: build
	@ctest --test-dir $(BUILD) --output-on-failure -R '^check_net$$'


soak: build
	@python3 tools/soak.py $(SOAK_ARGS)

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

tidy: configure
	@git ls-files 'src/*.cc' | xargs clang-tidy -p $(BUILD) --quiet

clean:
	@rm -rf build
