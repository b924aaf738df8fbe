#!/bin/bash
# After pipeline.sh OUT, from the same checkout's root: 2 reference models of the quickstart's target,
# and its detector tested beside them (LiRA, RMIA, the reference-calibrated loss).
set -e
OUT=$1; PY=${PY:-python}
$PY -m mint references --target-run $OUT/qs/run_0/target/version_0 --count 2 --save-dir $OUT/refs -- --trainer.enable_progress_bar=false > $OUT/refs.log 2>&1
SET=$(ls -d $OUT/refs/references/*/ | head -1)
$PY -m mint.cli test --config $OUT/qs/run_0/mint_layer7/version_0/config.yaml --ckpt_path $OUT/qs/run_0/mint_layer7/version_0/checkpoints/best.ckpt \
  --model.init_args.references=$SET --trainer.logger.init_args.version=refs > $OUT/refstest.log 2>&1
echo done
