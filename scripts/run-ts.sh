#!/usr/bin/env bash
# Runs a TypeScript file against the sources: bundles it with esbuild, then runs it with node.
set -euo pipefail
f="$1"; shift
out="$(dirname "$0")/../.cache/run/$(basename "$f" .ts).mjs"
mkdir -p "$(dirname "$out")"
npx esbuild "$f" --bundle --platform=node --format=esm --external:webgpu --external:playwright-core --external:@anush008/tokenizers --external:@huggingface/tokenizers --external:@huggingface/jinja --outfile="$out" --log-level=warning
exec node "$out" "$@"
