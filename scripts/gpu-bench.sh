#!/usr/bin/env bash
# Builds the addon against the CUDA libtorch of a pip-installed PyTorch and runs the bench on the GPU, ours
# beside PyTorch eager and torch.compile from the same Python (ours replays CUDA graphs there; "ours eager" does
# not), after the CUDA-graph tests; then checks that training and sampling run there end to end.
#   PYTHON=python3 scripts/gpu-bench.sh [extra bench options]
# Needs: an NVIDIA GPU, Node 20 with this repository's node_modules (npm ci), a C++ compiler and a Python
# whose `torch` was built with CUDA. Writes everything it prints to gpu-bench.log as well.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
exec > >(tee gpu-bench.log) 2>&1

TORCH_DIR=$("$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "this torch sees no GPU"; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# The addon links the very libtorch the peer uses.
LIBTORCH="$TORCH_DIR" npx node-gyp rebuild >/dev/null
export LD_LIBRARY_PATH="$TORCH_DIR/lib:${LD_LIBRARY_PATH:-}"
node --import tsx -e "import('./src/torch/index.ts').then((t) => { if (!t.cuda.isAvailable()) { console.error('addon built without CUDA'); process.exit(1); } console.log('addon: libtorch', t.torchVersion, 'CUDA devices', t.cuda.deviceCount()); })"

# CUDA graphs: a graphed function, graphed training against eager training, graphed sampling against eager.
node --import tsx --test test/cuda-graph.test.ts

# The bench's peer is a plain Python file; point it at this Python instead of Debian's.
BENCH_PYTHON="$PYTHON" node --import tsx bench/bench.ts --device cuda "$@"

# End to end on the GPU: a short training, a checkpoint, sampling from it, and loading it on the CPU.
work=$(mktemp -d)
node bin/ssddpm.js train --model small --epochs 1 --per-class 100 --device cuda --out "$work/small"
node bin/ssddpm.js sample --run "$work/small" --device cuda --out "$work/cuda.png"
node bin/ssddpm.js sample --run "$work/small" --device cpu --out "$work/cpu.png"
ls -la "$work"
