#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test kiln:
#  - chromium: its SwiftShader Vulkan driver gives Node's Dawn a WebGPU adapter without a GPU,
#    and it runs the browser tests (driven by playwright-core; no browser is downloaded)
#  - mesa-vulkan-drivers: lavapipe, Deno's WebGPU adapter (it has shader-f16)
#  - the npm dependencies (npm ci)
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in chromium mesa-vulkan-drivers; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
