# lorad — the two commands a newcomer runs: `make serve` and `make test`.
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)
SWIFT ?= swift
MODEL := models/SmolLM2-135M-Instruct.Q4_1.gguf
LORAD := .build/release/lorad
THREADS ?= 2

.PHONY: all deps model build serve test lint bench bench-deps learn-demo format clean systemd-check

all: build

deps:
	@scripts/install-deps

model: deps
	@models/fetch

build: deps
	@mkdir -p .build && echo "building lorad (release; log: .build/build.log)"
	@$(SWIFT) build -c release --product lorad > .build/build.log 2>&1 || { cat .build/build.log; exit 1; }

serve: model build
	@echo "lorad serve: JSON lines on 127.0.0.1:7411 (try: .build/release/lorad generate --help, or see README)"
	$(LORAD) serve $(SERVE_FLAGS)

test: model lint systemd-check
	@mkdir -p .build && echo "building tests (log: .build/test-build.log)"
	@$(SWIFT) build --build-tests > .build/test-build.log 2>&1 || { cat .build/test-build.log; exit 1; }
	@# Tests that pin the kernels' ISA (a process-wide setting) run in a process of their own, so
	@# they never change the arithmetic under the model-level tests running in parallel.
	$(SWIFT) test --skip-build --filter KernelISATests
	$(SWIFT) test --skip-build --skip KernelISATests

lint:
	@$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

bench: model build bench-deps
	@bench/compare $(THREADS)

# The benchmarks' Python side (random GGUF LoRA adapters for llama-server): installed once.
bench-deps:
	@python3 -c "import gguf, numpy" 2>/dev/null || { echo "installing gguf and numpy (pip)"; \
	  python3 -m pip install -q --disable-pip-version-check "gguf==0.17.1" numpy 2>&1 | grep -v "as the 'root' user" || true; }

learn-demo: model build
	@bench/learn/run $(PREFERENCES)

systemd-check:
	@scripts/systemd-check

format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift

clean:
	rm -rf .build
