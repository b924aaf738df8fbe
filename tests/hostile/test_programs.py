"""Hostile target programs and settings: files whose code writes files, preprocessing that makes NaN.

Every file here is real: a scripted module whose forward calls `torch.save`, one whose
`__setstate__` does (run by `torch.jit.load`), `.pt2` archives whose pickle or shape expression runs
a command. Each test checks the payload's file is never written, and that clean files still load.
"""

from __future__ import annotations

import io
import json
import sys
import warnings
import zipfile
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import fx, nn

from mint.errors import MintError
from tests.conftest import CONFIGS, quiet

CONFIG = str(CONFIGS / "mint_your_model.yaml")


class Writes(nn.Module):
    """Writes `path` from its forward pass (scripted, the path is a constant of the file)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path, self.fc = path, nn.Linear(3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.path)
        return self.fc(x.mean((2, 3)))


class Prints(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 0:  # inside a block: the walk goes into `if` bodies
            print("a message from the file")
        return self.fc(x.mean((2, 3)))


class SetsState(nn.Module):
    """Writes `path` from `__setstate__`, which torch.jit.load runs while reading the file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path, self.fc = path, nn.Linear(3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        torch.save(torch.zeros(1), state[0])
        self.path, self.training = state


def tiny() -> nn.Module:
    layers = (nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    return nn.Sequential(*layers)


def _rewrite(source: Path, target: Path, change) -> Path:
    """A copy of the zip `source` with each member's bytes passed through `change(name, data)`."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for item in old.infolist():
            new.writestr(item, change(item.filename, old.read(item.filename)))
    return target


class _Payload:
    """Unpickling it runs `os.system(command)`."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> Path:
    """Clean and hostile TorchScript and .pt2 files; `pwned*` in the folder marks a payload that ran."""
    folder = tmp_path_factory.mktemp("programs")
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated upstream
        torch.jit.save(torch.jit.script(tiny().eval()), folder / "tiny.pt")
        torch.jit.save(torch.jit.trace(tiny().eval(), torch.rand(2, 3, 32, 32)), folder / "traced.pt")
        torch.jit.save(torch.jit.script(Writes(str(folder / "pwned")).eval()), folder / "writes.pt")
        torch.jit.save(torch.jit.script(Prints().eval()), folder / "prints.pt")
        torch.jit.save(torch.jit.script(SetsState(str(folder / "pwned")).eval()), folder / "setstate.pt")
    batch = {"input": {0: torch.export.Dim("batch")}}  # (nn.Sequential names its argument `input`)
    torch.export.save(
        torch.export.export(tiny().eval(), (torch.rand(2, 3, 32, 32),), dynamic_shapes=batch),
        folder / "tiny.pt2",
    )
    pickled = io.BytesIO()
    torch.save(_Payload(f"touch {folder / 'pwned'}"), pickled)
    inputs = "sample_inputs/model.pt"  # example inputs, which torch.export.load unpickles
    _rewrite(
        folder / "tiny.pt2",
        folder / "pickle.pt2",
        lambda name, data: pickled.getvalue() if name.endswith(inputs) else data,
    )
    command = f"(__import__('os').system('touch {folder / 'pwned'}') and 0) + "

    def expression(name: str, data: bytes) -> bytes:
        if not name.endswith("models/model.json"):
            return data
        return data.replace(b'"expr_str": "', b'"expr_str": "' + command.encode(), 1)

    _rewrite(folder / "tiny.pt2", folder / "sympy.pt2", expression)
    return folder


def pwned(folder: Path) -> list[str]:
    return [p.name for p in folder.glob("pwned*")]


@pytest.mark.parametrize(
    "name, words",
    [
        ("writes.pt", ["calls aten::save, which writes files", "pure tensor operations"]),
        ("prints.pt", ["calls prim::Print, which prints"]),
        ("setstate.pt", ["defines __(set|get)state__", "before mint can check it"]),
        ("pickle.pt2", ["holds a pickle that holds more than tensors", "run it as code"]),
        ("sympy.pt2", ["shape expression", "__import__", "run it as code"]),
    ],
)
def test_a_program_that_would_run_code_is_refused_before_it_runs(programs, refused, name, words):
    refused(["layers", "--program", programs / name, "--image-size", "32"], *words)
    assert pwned(programs) == []


def test_clean_scripted_traced_and_exported_files_still_list_their_layers(programs):
    from mint.models.layers import main

    for name in ("tiny.pt", "traced.pt", "tiny.pt2"):
        rows = main(["--program", str(programs / name), "--image-size", "32"])
        assert rows[-1]["note"] == "logits" and rows[-1]["shape"] == (10,), name


def test_an_exported_graph_calling_anything_but_aten_operators_is_refused(tmp_path):
    from mint.models.exported import ExportedNetwork

    calls = {torch.save: "torch.serialization.save", torch._C._set_grad_enabled: "torch._C._set_grad_enabled"}
    for call, words in calls.items():
        graph = fx.Graph()
        x = graph.placeholder("x")
        node = graph.call_function(call, (x, str(tmp_path / "pwned")) if call is torch.save else (False,))
        node.meta["nn_module_stack"] = {"fc": ("fc", "Linear")}
        graph.output(x)
        with pytest.raises(MintError, match=f"calls {words}.*which is not an aten operator"):
            ExportedNetwork(fx.GraphModule(nn.Module(), graph), "crafted.pt2")
    assert not (tmp_path / "pwned").exists()


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> Path:
    """150 known members and 150 non-members of the bundled sample, as a `mint_your_model` config reads."""
    folder = tmp_path_factory.mktemp("known")
    data = np.load(files("mint") / "sample" / "cifar10_sample_train.npz")
    np.savez(folder / "members.npz", images=data["images"][:150], labels=data["labels"][:150])
    np.savez(folder / "nonmembers.npz", images=data["images"][150:300])
    np.savez(folder / "suspect.npz", images=data["images"][300:340], labels=data["labels"][300:340])
    return folder


def detector_fit(known: Path, tmp: Path, *target: str) -> list[str]:
    """`mint fit` of the your-model detector config, one fast_dev_run step, with `target` arguments."""
    sizes = ["--data.val_size=20", "--data.test_size=40", "--data.calibration_size=30"]
    return [
        "fit",
        "--config",
        CONFIG,
        *target,
        f"--data.init_args.members={known / 'members.npz'}",
        f"--data.init_args.nonmembers={known / 'nonmembers.npz'}",
        *sizes,
        *quiet(tmp),
        "--trainer.fast_dev_run=1",
        "--data.cache_dir=null",
        "--data.batch_size=32",
    ]


SCRIPTED = [
    "--data.init_args.target=mint.models.ScriptTarget",
    "--data.init_args.target.init_args.image_size=32",
    "--data.init_args.layers=[fc]",
]


def test_a_detector_fit_on_a_file_writing_program_never_runs_it(programs, known, tmp_path, refused):
    program = f"--data.init_args.target.init_args.program={programs / 'writes.pt'}"
    refused(detector_fit(known, tmp_path, *SCRIPTED, program), "aten::save, which writes files")
    assert pwned(programs) == [] and not any(tmp_path.rglob("*.ckpt"))


def test_an_audit_of_a_detector_carrying_a_file_writing_program_never_runs_it(
    programs, known, tmp_path, refused
):
    from mint.files import file_sha256
    from mint.models import Target
    from mint.models.scripted import ScriptTarget

    clean = Target.from_external(ScriptTarget(str(programs / "tiny.pt"), image_size=32), ["1"])
    evil = str(programs / "writes.pt")  # the record names it, with its true sha256: it passes that check
    config = {**clean.meta["config"], "init_args": {**clean.meta["config"]["init_args"], "program": evil}}
    meta = {**clean.meta, "config": config, "path": evil, "sha256": file_sha256(evil)}
    weights = {f"target.{k}": v for k, v in clean.state_dict().items()}
    scores = torch.linspace(0, 1, 40)
    members = (torch.arange(40) % 2).long()
    calibration = {"true_label": scores, "predicted_label": scores, "members": members}
    ckpt = tmp_path / "detector.ckpt"
    torch.save(
        {
            "mint_target": meta,
            "state_dict": weights,
            "mint_calibration": calibration,
            "hyper_parameters": {"layers": ["1"]},
        },
        ckpt,
    )
    out = tmp_path / "audit"
    refused(["audit", "--ckpt", ckpt, "--images", known / "suspect.npz", "--output", out], "aten::save")
    assert pwned(programs) == [] and not out.exists()


@pytest.mark.parametrize(
    "option, words",
    [
        ("std=[0,0,0]", r"std\[0\] must be in \(0, inf\], got 0"),
        ("std=[1,-1,1]", r"std\[1\] must be in \(0, inf\], got -1"),
        ("mean=[0.5,0.5,.nan]", r"mean\[2\] must be a finite number|nan"),
        ("image_size=1000000", r"image_size must be a whole number of pixels in \[8, 4096\]"),
    ],
)
def test_a_program_target_that_would_compute_nan_or_terabytes_is_refused(
    programs, known, tmp_path, refused, option, words
):
    program = f"--data.init_args.target.init_args.program={programs / 'tiny.pt'}"
    args = [*SCRIPTED, program, f"--data.init_args.target.init_args.{option}"]
    refused(detector_fit(known, tmp_path, *args), words)
    assert not any(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    "option, words",
    [
        ("image_size=0", r"image_size must be a whole number of pixels in \[8, 4096\], got 0"),
        ("image_size=100000", r"\[8, 4096\], got 100000"),
        ("num_classes=-3", r"num_classes must be a whole number in \[1, 1,000,000\], got -3"),
        ("transforms=resnet18.X", "unknown torchvision weights 'resnet18.X'"),
        ("std=[0,0,0]", r"std\[0\] must be in \(0"),
    ],
)
def test_torchvision_target_settings_are_refused_in_one_line(known, tmp_path, refused, option, words):
    weights = f"--data.init_args.target.init_args.weights={tmp_path / 'never_read.safetensors'}"
    refused(detector_fit(known, tmp_path, weights, f"--data.init_args.target.init_args.{option}"), words)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--arch", "resnet18", "--num-classes", "-1"], r"--num-classes must be .* \[1, 1,000,000\], got -1"),
        (
            ["--arch", "resnet18", "--num-classes", "10", "--image-size", "1000000"],
            r"\[8, 4096\], got 1000000",
        ),
        (["--arch", "resnet18", "--num-classes", "10", "--image-size", "-5"], "got -5"),
        (["--program", "x.pt", "--image-size", "0"], r"--image-size .* got 0"),
        (["--factory", "os:system"], "Python's standard library, which builds no models"),
        (["--factory", "builtins:exec"], "'builtins', a module of Python's standard library"),
        (["--factory", "torch.nn.functional:relu"], "signature .*input.* cannot be called with factory_args"),
        (["--factory", "torch:float32"], "is a dtype, not a function"),
    ],
)
def test_mint_layers_settings_are_refused_in_one_line(refused, argv, words):
    refused(["layers", *argv], words)


def test_a_vit_read_at_another_size_says_which_size_it_reads(refused):
    pytest.importorskip("timm")
    argv = ["layers", "--timm", "--arch", "vit_tiny_patch16_224", "--num-classes", "10", "--image-size", "32"]
    refused(argv, "vit_tiny_patch16_224 does not run on images of 32 x 32 px", "pass --image-size 224")


def test_mint_layers_lists_an_untrained_architecture(capsys):
    from mint.models.layers import main

    names = [r["layer"] for r in main(["--arch", "resnet18", "--num-classes", "10", "--image-size", "32"])]
    assert {"layer4", "avgpool", "fc", "grad:fc", "gradnorm:all"} <= set(names)
    assert "untrained resnet18" in capsys.readouterr().err


def test_mint_layers_reads_a_detector_of_an_external_target(programs, tmp_path, refused, capsys):
    from mint.models import Target
    from mint.models.layers import main
    from mint.models.scripted import ScriptTarget

    target = Target.from_external(ScriptTarget(str(programs / "tiny.pt"), image_size=32), ["1"])
    ckpt = tmp_path / "detector.ckpt"
    torch.save(
        {
            "mint_target": target.meta,
            "state_dict": {f"target.{k}": v for k, v in target.state_dict().items()},
        },
        ckpt,
    )
    assert [r["layer"] for r in main(["--ckpt", str(ckpt)])] == ["0", "1", "2", "3", "4"]
    config = {"class_path": "mint.models.FactoryTarget", "init_args": {"factory": "my_nets:small"}}
    torch.save(
        {
            "mint_target": {**target.meta, "kind": "FactoryTarget", "config": config},
            "state_dict": {"target.mean": torch.zeros(3)},
        },
        ckpt,
    )
    refused(["layers", "--ckpt", ckpt], "built by your code 'my_nets:small'", "--factory my_nets:small")


def test_trusting_a_factory_does_not_trust_the_arguments_a_file_records(tmp_path, monkeypatch):
    from mint.models.kinds import external_from_config

    marker = tmp_path / "pwned"
    (tmp_path / "hostile_factory.py").write_text(
        "import pathlib, torchvision\n\ndef make(path=None, num_classes=10):\n"
        "    if path:\n        pathlib.Path(path).write_text('ran')\n"
        "    return torchvision.models.resnet18(num_classes=num_classes)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "hostile_factory", raising=False)
    recorded = {"path": str(marker)}
    config = {
        "class_path": "mint.models.FactoryTarget",
        "init_args": {"factory": "hostile_factory:make", "factory_args": recorded, "image_size": 32},
    }
    shown = json.dumps(recorded, sort_keys=True)
    with pytest.raises(MintError, match="you gave none.*--trust-factory-args") as refusal:
        external_from_config(config, "d.ckpt", "hostile_factory:make")
    assert shown in str(refusal.value)
    with pytest.raises(MintError, match=r'not with \{"path": "elsewhere"\}'):
        external_from_config(config, "d.ckpt", "hostile_factory:make", {"path": "elsewhere"})
    assert not marker.exists()  # nothing was called
    kind = external_from_config(config, "d.ckpt", "hostile_factory:make", json.loads(shown))
    assert kind.factory_args == recorded and not marker.exists()  # built, not yet called
