#!/bin/bash
# Results before and after a change, compared bit for bit (the check of a restructure): the quickstart,
# a detector on full CIFAR-10, 2 reference models with the detector tested beside them, and an audit,
# run by the base commit's code and by this checkout's, then compared (compare.py).
# Usage, from the repository root (about 9 minutes on 2 cores):
#   DATA=../shared/data bash benchmarks/same_results/run.sh BASE_COMMIT OUT
set -euo pipefail
BASE=$1; OUT=$(realpath -m "$2"); HERE=$(pwd); TOOLS="$HERE/benchmarks/same_results"
export PY=${PY:-$(command -v python)} DATA=$(realpath "${DATA:-../shared/data}")
git worktree add -f "$OUT/base_tree" "$BASE" > /dev/null
for side in base head; do
    tree=$([ $side = base ] && echo "$OUT/base_tree" || echo "$HERE")
    (cd "$tree" && for step in pipeline references audit; do bash "$TOOLS/$step.sh" "$OUT/$side"; done)
done
git worktree remove --force "$OUT/base_tree"
"$PY" "$TOOLS/compare.py" "$OUT/base" "$OUT/head"
