#!/bin/bash
# The prepared GPU check of issue 7, for a session whose task is lent a device machine
# (an H200 image with python3 3.12, torch, numba, pyyaml and tqdm, but no network).
#
#   here, once:     bash benchmarks/gpu_check.sh --prepare     # wheels + N-MNIST subset into .gpu/ (git-ignored)
#   on the device:  run(command="bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=600)
#
# Steps (at most 9 minutes: each has its own time limit; output in $OUT/gpu_check.log):
#   1. CUDA parity: numba (CPU) against torch (CUDA) on the LIF and Izhikevich test networks;
#   2. gpu_lsm.py: NALSM1000 feature extraction at batches 256, 1024, 4096 (fixed, astro-STDP, norse);
#   3. bench_layer.py: Linear + LIF, n = 4096, 8192, 16384, against norse (+compile) and snnTorch.
set -u
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--prepare" ]; then
    grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || echo "/.gpu/" >> .git/info/exclude
    mkdir -p .gpu/whl .gpu/data
    for spec in pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
                nir==1.0.8 nirtorch==2.6 snntorch==1.0.0; do
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .gpu/whl "$spec" || echo "could not download $spec (pick the version pip offers)"
    done
    # norse 1.1.0 comes as a source archive only: build its (pure Python) wheel here
    python3 -m pip download -q --no-deps --no-binary=:all: -d /tmp/norse-sdist norse==1.1.0 \
        && python3 -m pip wheel -q --no-deps --no-build-isolation -w .gpu/whl /tmp/norse-sdist/norse-1.1.0.tar.gz
    rsync -a "${SPIKING_DATA:-../shared/data}/nmnist-small" .gpu/data/ 2>/dev/null \
        || cp -r "${SPIKING_DATA:-../shared/data}/nmnist-small" .gpu/data/
    du -sh .gpu
    exit 0
fi
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
export PYTHONUNBUFFERED=1 SPIKING_DATA="$PWD/.gpu/data" SPIKING_CACHE=/tmp/spiking-cache
if ls .gpu/whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
else
    export PYTHONPATH="$PWD"
fi
{
    echo "== device"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import torch, numba, numpy; print('torch', torch.__version__, 'numba', numba.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name())"
    echo "== 1. parity numba (CPU) / torch (CUDA)"
    timeout 120 python3 - <<'EOF'
import sys
sys.path.insert(0, "tests")
import numpy as np, spiking
from netfiles import LIF_NET, IZH_NET, write
from pathlib import Path
import tempfile
with tempfile.TemporaryDirectory() as d:
    for name, text, fill in (("lif", LIF_NET, {}), ("izhikevich", IZH_NET, {"SCHEME": "izhikevich2003"})):
        path = str(write(Path(d), text, **fill))
        a = spiking.load(path, backend="numba").run("200 ms", progress=False)
        b = spiking.load(path, backend="torch", device="cuda").run("200 ms", progress=False)
        for pop in a.spikes:
            same = all(np.array_equal(a.spikes[pop][k], b.spikes[pop][k]) for k in ("instance", "t", "i"))
            print(f"{name} {pop}: spikes numba {a.spikes[pop]['t'].size}, torch-cuda "
                  f"{b.spikes[pop]['t'].size}: {'identical' if same else 'DIFFERENT'}")
EOF
    echo "== 2. gpu_lsm.py"
    timeout 300 python3 benchmarks/gpu_lsm.py --device cuda --batches 256 1024 4096 --samples 8192
    echo "== 3. bench_layer.py"
    timeout 120 python3 benchmarks/bench_layer.py --device cuda --sizes 4096 8192 16384 --repeats 3
} 2>&1 | tee "$LOG"
