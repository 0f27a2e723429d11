# Thin wrapper over CMake. The README's two commands:
#   make run    install what is missing, build, run the demo
#   make test   install what is missing, build, run the whole test suite
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build run test test-asan isa-doc format bench clean

all: build

deps:
	@sh tools/install-deps.sh

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	@sh examples/demo.sh $(BUILD)/nanovm

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DNVM_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

isa-doc:
	cmake -S . -B $(BUILD) >/dev/null && cmake --build $(BUILD) --target gen_isa_doc
	$(BUILD)/gen_isa_doc > docs/isa.md

format:
	clang-format -i include/*.h src/*/*.c src/*/*.h cli/*.c cli/*.h tests/*.c tools/*.c 2>/dev/null || true

bench: build
	@sh tools/install-deps.sh bench
	sh bench/run.sh $(BUILD)/nanovm

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
