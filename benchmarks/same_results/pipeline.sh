#!/bin/bash
# The quickstart, then a target on full CIFAR-10 (3 epochs) and a layer-7 detector on it (3 epochs,
# fit and test). Usage, from a checkout's root: pipeline.sh OUT (PY: the python, DATA: the npz folder).
set -e
OUT=$1; mkdir -p $OUT
PY=${PY:-python}
D=${DATA:-../shared/data}  # cifar10_train.npz, cifar10_test.npz
TC=configs/target_cifar10.yaml; [ -f $TC ] || TC=configs/classifier_cifar10.yaml  # its name before issue 29
TN=$(basename $TC .yaml)
$PY -m mint quickstart --output $OUT/qs --no-progress-bar > $OUT/qs.log 2>&1
$PY -m mint.cli fit --config $TC \
  --data.source=mint.data.NpzSource --data.source.train=$D/cifar10_train.npz --data.source.test=$D/cifar10_test.npz \
  --data.num_workers=0 --trainer.enable_progress_bar=false --trainer.max_epochs=3 \
  --trainer.logger.init_args.save_dir=$OUT/logs > $OUT/target.log 2>&1
T=$OUT/logs/$TN/latest/checkpoints/best.ckpt
W=model; grep -q "target_ckpt" mint/data/detector_datamodule.py && W=data  # where it is named (data: issue 29)
$PY -m mint.cli fit --config configs/mint_layer7.yaml --$W.init_args.target_ckpt=$T \
  --data.source=mint.data.NpzSource --data.source.train=$D/cifar10_train.npz --data.source.test=$D/cifar10_test.npz \
  --data.cache_dir=$OUT/cache --trainer.enable_progress_bar=false --trainer.max_epochs=3 \
  --trainer.logger.init_args.save_dir=$OUT/logs > $OUT/det.log 2>&1
$PY -m mint.cli test --config configs/mint_layer7.yaml --$W.init_args.target_ckpt=$T \
  --data.source=mint.data.NpzSource --data.source.train=$D/cifar10_train.npz --data.source.test=$D/cifar10_test.npz \
  --data.cache_dir=$OUT/cache --trainer.enable_progress_bar=false \
  --trainer.logger.init_args.save_dir=$OUT/logs --ckpt_path $OUT/logs/mint_layer7/latest/checkpoints/best.ckpt > $OUT/dettest.log 2>&1
echo done
