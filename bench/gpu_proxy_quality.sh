#!/usr/bin/env bash
# The proxy-quality ground truth (and proxies) of the `cpu` and `dev` protocols on a lent GPU
# machine, within a fixed budget; everything it finishes lands in the benchmark caches, which
# are packed into $OUT/results.tgz to be unpacked in the repository root here.
#
#   bench/gpu_proxy_quality.sh            # on the GPU machine, from the repository root
#
# Needs the Fashion-MNIST .gz files in $BLOCKZOO_FASHION_MNIST_DIR (default .gpu/fashion-mnist,
# copied there from /usr/share/datasets/fashion-mnist before the call, since that machine has no
# Debian package), python3 with torch, numpy, safetensors, scipy, pillow.
set -u
export PYTHONUNBUFFERED=1
export BLOCKZOO_FASHION_MNIST_DIR="${BLOCKZOO_FASHION_MNIST_DIR:-$PWD/.gpu/fashion-mnist}"
BUDGET_MINUTES="${BUDGET_MINUTES:-8}"
WORKERS="${WORKERS:-12}"
OUT="${OUT:-bench/results/tmp/gpu_out}"
mkdir -p "$OUT"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  nproc
  python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.is_available())"
} 2>&1 | tee "$OUT/machine.txt"
hard_limit=$(python3 -c "print(int($BUDGET_MINUTES * 60 + 75))")
timeout "$hard_limit" python3 -m bench.proxy_quality --stage parallel --protocols cpu,dev \
  --workers "$WORKERS" --budget-minutes "$BUDGET_MINUTES" --proxies main,zero_cost,sweep,epoch \
  >"$OUT/log.txt" 2>&1
echo "exit status $?" >>"$OUT/log.txt"
tail -n 40 "$OUT/log.txt"
# The caches, and the main zoo (T = 20, PR + KD) that the PR/KD ground truth, the CPU cost
# measurement and the tuning runs build on; the other zoos' proxies are in proxies.json.
python3 - "$OUT/results.tgz" <<'EOF'
import json, sys, tarfile
from pathlib import Path
paths = [Path("bench/results/cache/groundtruth"), Path("bench/results/cache/proxy_quality")]
for zoo in sorted(Path("bench/results/tmp/proxy_quality/zoos").glob("*")):
    manifest = zoo / "manifest.json"
    recipe = json.loads(manifest.read_text())["recipe"] if manifest.is_file() else {}
    if recipe.get("batches") == 20 and recipe.get("init") == "remap":
        paths.append(zoo)
with tarfile.open(sys.argv[1], "w:gz") as tar:
    for path in paths:
        if path.exists():
            tar.add(path)
print("packed", [str(p) for p in paths])
EOF
ls -la "$OUT"
