#!/usr/bin/env bash
# Byte-identity check for a refactor (issue 24): the same four tokenize jobs (one per router, beta 0.5)
# over a fixed generated corpus (5 sample videos + one corrupt file), then the SHA-256 of every
# file written (benchmarks/dataset_digest.py). Run it with two trees and diff the listings:
#
#     benchmarks/house_digest.sh OLD_TREE WORK_DIR > before.txt
#     benchmarks/house_digest.sh NEW_TREE WORK_DIR > after.txt && diff before.txt after.txt
#
# TREE is a checkout put first on PYTHONPATH (the installed venv supplies the dependencies). Use the
# same WORK_DIR for both runs: rows name their source videos by absolute path, and the plan records
# each video's mtime (the script pins the generated videos' mtimes).
set -euo pipefail
tree=$(cd "$1" && pwd); work=$2
rm -rf "$work" && mkdir -p "$work/corpus"
export PYTHONPATH="$tree" RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
cd "$work"
python - <<'PY'
from jobs.samples import write_samples
write_samples("corpus", height=96, width=96, frames=21)
open("corpus/broken.mp4", "wb").write(b"not a video" * 100)
PY
touch -d "2026-01-01 00:00:00 UTC" corpus/*
for router in gain2 elbo gain latent; do
  python -m jobs.cli tokenize corpus "out/$router" --router "$router" --beta 0.5 --resolution 64 \
    --clip-frames 9 --shard-size 2 --device cpu > "log-$router.txt" 2>&1 || { cat "log-$router.txt"; exit 1; }
done
python "$tree/benchmarks/dataset_digest.py" out/*
