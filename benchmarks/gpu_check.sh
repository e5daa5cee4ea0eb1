#!/usr/bin/env bash
# The golden MVM on a GPU: the exactness and property tests on cuda (and cpu), then the MVM
# benchmark at batch 1, 64 and 1024 for one core and for 48 cores in one call, with the CPU
# rows rerun in the same run. Run from anywhere on a machine whose python3 has torch with
# CUDA, numpy, scipy, pytest and hypothesis; amaranth, cocotb and cimflow itself are not
# needed: the package is put on PYTHONPATH through a folder of links (the layout that
# pyproject's package-dir gives an install). numba is used when present (fused CPU kernels),
# matplotlib when present (the PNG). Results: $OUT (default build/gpu_check): test log,
# benchmark table, results.json. The timeouts keep the whole script under 6 minutes on one
# H100/H200 with 16 cores (tests about 30 s, benchmark about 2 min there); a test failure
# does not skip the benchmark, and the script's status is then the tests'.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-build/gpu_check}
mkdir -p "$OUT"

SHIM=$(mktemp -d)
trap 'rm -rf "$SHIM"' EXIT
mkdir "$SHIM/cimflow"
for f in cimflow/*; do ln -s "$PWD/$f" "$SHIM/cimflow/"; done
ln -s "$PWD/golden" "$SHIM/cimflow/golden"
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
# python -m puts the working directory first on sys.path, where the repository's own
# cimflow/ folder (without golden/) would shadow the shim's package
export PYTHONSAFEPATH=1

"$PY" - <<'PYEOF' | tee "$OUT/device.txt"
import numpy, torch
from cimflow.golden import fused_cpu
assert torch.cuda.is_available(), "torch sees no GPU: this script is for a CUDA machine"
print("torch", torch.__version__, "numpy", numpy.__version__, "device",
      torch.cuda.get_device_name(0), "numba fused CPU kernels:", fused_cpu.AVAILABLE)
PYEOF

# 1. exactness on every device (the torch tests parametrize over cpu and cuda): integer
# reference charge, cycle level == algorithmic level, many cores == one by one, draws
# on the device; then the NumPy-level golden tests on the CPU
tests_rc=0
timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_golden_torch.py \
    tests/test_golden_mvm.py tests/test_golden_neuron.py tests/test_golden_cycle.py \
    tests/test_golden_fast_random.py 2>&1 | tee "$OUT/tests.log" || tests_rc=$?

# 2. the benchmark: CPU rows (one thread) and the same rows on cuda, in one run
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
    timeout 180 "$PY" -u benchmarks/bench_golden_mvm.py --device cuda --cores 48 --out "$OUT" \
    2>&1 | tee "$OUT/bench.txt"
exit "$tests_rc"
