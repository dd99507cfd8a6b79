# lorad — the two commands a newcomer runs: `make serve` and `make test`.
SHELL := /bin/bash
export PATH := /opt/swift/usr/bin:$(PATH)
SWIFT ?= swift
MODEL := models/SmolLM2-135M-Instruct.Q4_1.gguf
LORAD := .build/release/lorad
THREADS ?= 2

.PHONY: all deps model build serve test bench format clean

all: build

deps:
	@scripts/install-deps

model: deps
	@models/fetch

build: deps
	@$(SWIFT) build -c release --product lorad 2>&1 | grep -v -E '^(\[[0-9]+/[0-9]+\]|Building|Compiling|Write|Emitting|Planning)' || true
	@test -x $(LORAD) || { echo "build failed"; $(SWIFT) build -c release --product lorad; exit 1; }

serve: model build
	@echo "The daemon (lorad serve) arrives with the daemon issue; until then, one generation:"
	$(LORAD) generate --max-tokens 64 "Write a haiku about a small, fast language model."

test: model
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --parallel --num-workers 2

bench: model build
	@bench/compare $(THREADS)

format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift

clean:
	rm -rf .build
