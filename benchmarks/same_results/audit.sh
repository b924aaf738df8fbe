#!/bin/bash
# After pipeline.sh OUT, from the same checkout's root: `mint audit` of the quickstart's detector on 200
# test images of the bundled sample (images the detector never saw).
set -e
OUT=$1; PY=${PY:-python}
$PY - <<PY
import numpy as np
t = np.load("mint/sample/cifar10_sample_test.npz")
np.savez("$OUT/audit_test.npz", images=t["images"][:200], labels=t["labels"][:200])
PY
for s in test; do
  $PY -m mint audit --ckpt $OUT/qs/run_0/mint_layer7/version_0/checkpoints/best.ckpt --images $OUT/audit_$s.npz --output $OUT/audit_$s --no-progress-bar > $OUT/audit_$s.log 2>&1
done
echo done
