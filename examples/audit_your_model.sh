#!/usr/bin/env bash
# Audit a model trained outside mint, end to end, offline, on 2 CPU cores in a few minutes:
#   1. train a torchvision ResNet-18 with a plain PyTorch loop (examples/train_plain_pytorch.py),
#      saving .safetensors weights, known member / non-member folders and a suspect folder;
#   2. list its readable layers (mint layers);
#   3. write the target's YAML; fit and test a MINT detector on its penultimate layer;
#   4. audit the suspect folder (training images the detector never saw) and print the report's path.
# Usage: bash examples/audit_your_model.sh [OUT]   (OUT: examples_out; EPOCHS / DETECTOR_EPOCHS shorten it)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-examples_out}
EPOCHS=${EPOCHS:-12}
DETECTOR_EPOCHS=${DETECTOR_EPOCHS:-30}
LOGS="$OUT/lightning_logs"

echo "== 1. train the model elsewhere (plain PyTorch)"
python examples/train_plain_pytorch.py --out "$OUT" --epochs "$EPOCHS"

echo "== 2. its layers"
mint layers --arch resnet18 --weights "$OUT/resnet18.safetensors" --num-classes 10 --image-size 32

echo "== 3. the target for mint, and a detector on its penultimate layer (avgpool)"
cat > "$OUT/target.yaml" <<YAML
data:
  init_args:
    target:
      class_path: mint.models.TorchvisionTarget
      init_args:
        arch: resnet18
        weights: $OUT/resnet18.safetensors
        num_classes: 10
        image_size: 32
        mean: [0.4914, 0.4822, 0.4465]  # as the training script normalized
        std: [0.2470, 0.2435, 0.2616]
    members: $OUT/known/members
    nonmembers: $OUT/known/nonmembers
    cache_dir: $OUT/.mint_cache
trainer:
  max_epochs: $DETECTOR_EPOCHS
  logger:
    init_args:
      save_dir: $LOGS
YAML
CONFIG=(--config configs/mint_your_model.yaml --config "$OUT/target.yaml" --trainer.enable_progress_bar=false)
mint fit "${CONFIG[@]}"
CKPT="$LOGS/mint_your_model/latest/checkpoints/best.ckpt"
mint test "${CONFIG[@]}" --ckpt_path "$CKPT"
RESULTS=$(ls -td "$LOGS"/mint_your_model/version_*/ | head -1)test_results.json

echo "== 4. audit the suspect set"
rm -rf "$OUT/audit"
mint audit --ckpt "$CKPT" --images "$OUT/suspect" --output "$OUT/audit" --no-progress-bar

python - "$RESULTS" "$OUT/audit/summary.json" <<'PY'
import json, sys
r, a = (json.load(open(p)) for p in sys.argv[1:])
t = r["target_on_test_set"]
print(f"\ntarget accuracy on the test images: members {t['target_member_acc']:.3f}, non-members {t['target_nonmember_acc']:.3f}")
print(f"detector AUROC {r['mint']['auroc']:.3f}  vs  loss attack AUROC {r['baselines']['loss']['auroc']:.3f}"
      f"  (same {r['data']['sets']['test']['members']} + {r['data']['sets']['test']['nonmembers']} test images)")
print(f"audit of the suspect set: {a['verdict']}")
print(f"test results: {sys.argv[1]}")
PY
echo "report: $OUT/audit/report.html"
