#!/usr/bin/env bash
# Installs the system packages the toolkit builds and runs against (Debian 12 / Ubuntu):
#   libtorch-dev          the tensor engine (headers + libraries) the native addon links
#   libgloo-dev           Gloo's headers, for c10d's Gloo process group (data-parallel training)
#   libopenblas0-openmp   a fast BLAS for libtorch (the reference BLAS is ~3x slower at batch 1)
#   build-essential       g++ and make for the addon
#   python3-torch         PyTorch on the same libtorch: the side-by-side benchmark peer and test oracle
#   dataset-fashion-mnist the second dataset
#   chromium              the headless browser the page's tests (test/web.test.ts) drive through playwright-core
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
  libtorch-dev libgloo-dev libopenblas0-openmp build-essential python3 python3-torch dataset-fashion-mnist chromium >/dev/null
echo "system packages ready"
