#!/usr/bin/env bash
# Generates the pointwise AssemblyScript from the op table, builds the SIMD and scalar wasm
# modules, and embeds them for the TypeScript sources.
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/gen-assembly.mjs
npx asc assembly/index.ts --target simd
npx asc assembly/index.ts --target scalar
node scripts/embed-wasm.mjs
