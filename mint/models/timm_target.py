"""A timm classifier by name: weights from a file trained anywhere, or timm's own pretrained ones, cached."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from mint.errors import MintError
from mint.models.external import WeightsTarget, check_known_arch, load_weights, read_weights
from mint.models.preprocessing import dry_run, preprocessing_record

PRETRAINED = "pretrained"  # `weights:` value naming timm's own weights of `arch`, from the local cache
HUB_FILE = "model.safetensors"  # what timm's weights on the Hugging Face hub are stored as


def cached_weights(hub_id: str, arch: str) -> Path:
    """The local copy of timm's pretrained weights `hub_id`, never downloaded (no network is used)."""
    from huggingface_hub import try_to_load_from_cache

    cache = os.environ.get("HF_HUB_CACHE") or None  # read now: huggingface_hub read it at import
    found = try_to_load_from_cache(hub_id, HUB_FILE, cache_dir=cache)
    if not isinstance(found, str):
        raise MintError(
            f"timm's pretrained weights of {arch} ({hub_id}) are not in the local Hugging Face cache "
            f"({cache or 'HF_HUB_CACHE, default ~/.cache/huggingface/hub'}); mint never downloads them. On a "
            f"machine with internet: python -c \"import timm; timm.create_model('{arch}', pretrained=True)\" "
            "fills the cache; or give the weights file itself (weights: PATH)"
        )
    return Path(found)


class TimmTarget(WeightsTarget):
    """A timm classifier by architecture name (`pip install "mint-audit[timm]"`).

    Args:
        arch: a name of `timm.list_models()` (e.g. `resnet18`, `vit_tiny_patch16_224`), with a
            pretrained tag for `weights: pretrained` (e.g. `resnet18.a1_in1k`; `timm.list_pretrained()`).
        weights: a `.safetensors` or `.pt` / `.pth` state_dict trained anywhere, or `pretrained`: timm's
            own weights of `arch` from the local Hugging Face cache (`HF_HUB_CACHE`), never downloaded;
            the image size, crop, mean and std are then those weights' (their pretrained config).
        num_classes, strip_prefix, image_size, mean, std: as for `WeightsTarget` (with `pretrained`,
            `num_classes` must be the weights' own, 1000 for ImageNet).
    """

    preset = None  # (resize, crop, mean, std) of the pretrained weights' config

    def resolve(self) -> None:
        """For `weights: pretrained`, the hub name of the weights and their preprocessing."""
        if self.weights != PRETRAINED:
            return
        import timm

        try:
            cfg = timm.models.get_pretrained_cfg(self.arch)
        except RuntimeError:  # "Invalid pretrained tag"
            cfg = None
        if cfg is None or not cfg.hf_hub_id:
            tags = ", ".join(timm.list_pretrained(self.arch.split(".")[0] + "*")[:3]) or "resnet18.a1_in1k"
            raise MintError(
                f"timm has no pretrained weights named {self.arch!r} on the Hugging Face hub: name them "
                f"with their tag, e.g. {tags} (timm.list_pretrained())"
            )
        crop = cfg.input_size[-1]
        self.hub_id, self.preset = cfg.hf_hub_id, (round(crop / cfg.crop_pct), crop, cfg.mean, cfg.std)
        self.image_size = crop  # the size the network is built for

    def preprocessing(self) -> dict:
        if self.preset is None:
            return super().preprocessing()
        resize, crop, mean, std = self.preset
        return preprocessing_record(resize, mean, std, crop) | {
            "from": f"timm's pretrained config of {self.arch}"
        }

    def check_arch(self, arch: str) -> None:
        try:
            import timm
        except ImportError as err:
            raise MintError('timm targets need the timm package: pip install "mint-audit[timm]"') from err
        check_known_arch(arch.split(".")[0], timm.list_models(), "timm", "timm.list_models()")

    def build(self) -> nn.Module:
        import timm

        return timm.create_model(self.arch.split(".")[0], pretrained=False, num_classes=self.num_classes)

    def network(self, weights: bool = True) -> tuple[nn.Module, str]:
        if self.weights != PRETRAINED:
            return super().network(weights)
        net = self.build()
        dry_run(net, self.image_size, self.arch)
        if not weights:
            return net.eval(), ""
        path = cached_weights(self.hub_id, self.arch)
        state, sha256 = read_weights(path)
        load_weights(net, state, f"timm's pretrained {self.arch} ({path})", self.strip_prefix)
        return net.eval(), sha256
