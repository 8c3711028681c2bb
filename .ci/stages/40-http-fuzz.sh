#!/usr/bin/env bash
# The HTTP request parsing under libFuzzer with ASan and UBSan
# (spec/fuzz/http_request_fuzz.c) for 60 s, from the corpus in the tree.
# A crash leaves its input in build-fuzz/ (crash-*) and fails the stage.
set -euo pipefail
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DLUAIO_FUZZ=ON \
  -DLUAIO_TESTS=OFF -DLUAIO_EXAMPLES=OFF -DLUAIO_MIMALLOC=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target http_request_fuzz >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1"
export ASAN_OPTIONS="detect_leaks=1"
build-fuzz/http_request_fuzz -max_total_time=60 -max_len=70000 \
  -timeout=10 -print_final_stats=1 -artifact_prefix=build-fuzz/ \
  "$work" spec/fuzz/corpus/http_request
