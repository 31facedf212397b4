#!/usr/bin/env bash
# Generates the pointwise AssemblyScript from the op table, builds the SIMD and scalar wasm
# modules, and embeds them for the TypeScript sources.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/gen-assembly.mjs
node scripts/gen-unicode.mjs
npx asc assembly/index.ts --target simd
npx asc assembly/index.ts --target scalar
# The tokenizer is a module of its own (integer and byte work: no SIMD build needed).
npx asc assembly/tokenizer/index.ts --config /dev/null --runtime stub -O3 --noAssert --initialMemory 2 -o build/kiln-tok.wasm
node scripts/embed-wasm.mjs
