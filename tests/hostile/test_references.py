"""Hostile reference models: run folders that name code, mixed-up sets, damaged records, bounds, races.

One reference set of `tiny_target` is trained for the whole session (`reference_set`, two short
references); each case works on a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from mint.attacks.reference_loading import load_reference_set
from mint.data.membership import rebuild_membership
from mint.errors import MintError
from mint.experiments import reference_recipe
from mint.experiments import references as refs_module
from mint.records import load_target_checkpoint
from tests.conftest import detector_args

# Two short references: the target's recipe but two batches a run (a recipe change, so named).
FAST = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
QUIET = ["--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
EVIL = """open(__file__.rsplit("/", 1)[0] + "/PWNED", "w").write("imported")
from lightning.pytorch.callbacks import Callback
class Evil(Callback):
    pass
"""


@pytest.fixture(scope="session")
def reference_set(tmp_path_factory, tiny_target) -> Path:
    """A save dir holding one set of 2 fast references of `tiny_target` (trained with --other-recipe)."""
    save = tmp_path_factory.mktemp("hostile_references")
    run = tiny_target.parent.parent
    refs_module.main(["--target-run", str(run), "--count", "2", "--save-dir", str(save), "--other-recipe",
                      "--", *QUIET, *FAST])  # fmt: skip
    return save


def copied_set(reference_set: Path, tmp_path: Path) -> Path:
    """A copy of the session's reference set (its folder), to damage."""
    (folder,) = (reference_set / "references").iterdir()
    return Path(shutil.copytree(folder, tmp_path / "set", symlinks=True))


def copied_run(tiny_target: Path, tmp_path: Path, edit=None, text: str | None = None) -> Path:
    """A copy of the target's run folder, its config.yaml edited (a function of the dict) or replaced."""
    run = Path(shutil.copytree(tiny_target.parent.parent, tmp_path / "run"))
    if edit is not None:
        config = yaml.safe_load((run / "config.yaml").read_text())
        edit(config)
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    if text is not None:
        (run / "config.yaml").write_text(text)
    return run


def setting(path: str, value):
    """An edit of a config: `path` (dotted) set to `value`."""

    def edit(config: dict) -> None:
        *parents, last = path.split(".")
        for key in parents:
            config = config[key]
        config[last] = value

    return edit


@pytest.mark.parametrize(
    "edit",
    [
        setting("trainer.callbacks", [{"class_path": "evilcb.Evil"}]),
        setting("trainer.callbacks", ["evilcb.Evil"]),  # a class given as a plain string
        setting("trainer.callbacks", ["evil.yaml"]),  # a config file naming it
        setting("trainer.callbacks", ["{class_path: evilcb.Evil}"]),  # inline YAML
        setting("trainer.plugins", [{"class_path": "evilcb.Evil"}]),
        setting("model.init_args.optimizer", {"class_path": "evilcb.Evil"}),
        setting("data.init_args.source", "evilcb.Evil"),
    ],
    ids=["class_path", "string", "nested_file", "inline", "plugins", "optimizer", "source"],
)
def test_a_run_config_naming_foreign_code_is_refused_and_never_imported(
    tiny_target, tmp_path, monkeypatch, refused, edit
):
    (tmp_path / "evilcb.py").write_text(EVIL)
    (tmp_path / "evil.yaml").write_text("class_path: evilcb.Evil\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    run = copied_run(tiny_target, tmp_path, edit)
    refused(["references", "--target-run", run, "--count", "1", "--save-dir", tmp_path / "out"],
            "evilcb.Evil", "not mint's, torch.optim's or Lightning's")  # fmt: skip
    assert not (tmp_path / "PWNED").exists() and "evilcb" not in sys.modules
    assert not (tmp_path / "out").exists()


def test_jsonargparse_imports_only_allowed_classes_even_past_the_config_check(
    tiny_target, tmp_path, monkeypatch, refused
):
    """The second line: were the walk of the config to miss a spelling, jsonargparse refuses the import."""
    import inspect

    import jsonargparse

    if "import_path_allowlist" not in inspect.signature(jsonargparse.set_parsing_settings).parameters:
        pytest.skip("this jsonargparse has no import policy")
    (tmp_path / "evilcb.py").write_text(EVIL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(reference_recipe, "refuse_foreign_config", lambda config, where: None)
    run = copied_run(tiny_target, tmp_path, setting("trainer.callbacks", [{"class_path": "evilcb.Evil"}]))
    refused(["references", "--target-run", run, "--count", "1", "--save-dir", tmp_path / "out", "--", *QUIET],
            "evilcb.Evil", "not allowed")  # fmt: skip
    assert not (tmp_path / "PWNED").exists() and "evilcb" not in sys.modules
    assert jsonargparse._common.parsing_settings["import_paths_enforced"] is False  # the policy restored


def test_a_run_config_that_is_no_config_is_refused_in_one_line(tiny_target, tmp_path, refused):
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)
    )
    cases = {
        "- a YAML list\n- of two": "holds a list, not a mapping",
        "\x00\x01binary": "not text",
        bomb + "model: {class_path: mint.tasks.TargetModule, init_args: {arch: *a8}}\n": "aliases",
        "model: {class_path: evil.Module}\n": "is not a target run",
    }
    for i, (text, words) in enumerate(cases.items()):
        run = copied_run(tiny_target, tmp_path / str(i), text=text)
        refused(["references", "--target-run", run, "--count", "1", "--save-dir", tmp_path / "out"], words)
    (run / "config.yaml").unlink()
    os.mkfifo(run / "config.yaml")  # read, it would wait forever
    refused(["references", "--target-run", run, "--count", "1", "--save-dir", tmp_path / "out"], "FIFO")
    assert not (tmp_path / "out").exists()


def test_counts_and_indices_are_bounded(tiny_target, tmp_path, refused):
    run = tiny_target.parent.parent
    base = ["references", "--target-run", run, "--save-dir", tmp_path]
    refused([*base, "--count", "100000000"], "--count 100000000", "at most 1024")
    refused([*base, "--count", "4", "--index", "-1"], r"--index \[-1\]", r"0 \.\.\. 3")
    refused([*base, "--count", "4", "--index", "1000000000000"], r"--index \[1000000000000\]", r"0 \.\.\. 3")
    refused([*base, "--count", "4", "--index", "4"], r"--index \[4\]", r"0 \.\.\. 3")
    refused([*base, "--count", "2", "--seed", "-3"], "--seed must be >= 0")
    assert not (tmp_path / "references").exists()


def test_references_trained_otherwise_than_the_target_are_refused_or_named(
    tiny_target, reference_set, tmp_path, refused, capsys
):
    run = tiny_target.parent.parent
    refused(["references", "--target-run", run, "--count", "1", "--save-dir", tmp_path, "--", *FAST[:1]],
            r"trainer.max_epochs=1 \(target: 2\)", "--other-recipe")  # fmt: skip
    assert not (tmp_path / "references").exists()
    # Given --other-recipe (as the session's set was), every done.json records what changed ...
    folder = copied_set(reference_set, tmp_path)
    done = json.loads((folder / "ref_0" / "version_0" / "done.json").read_text())
    assert any(c.startswith("trainer.max_epochs=1") for c in done["recipe_differences"])
    # ... and a reader of the set is told, loudly, and records it.
    target = load_target_checkpoint(tiny_target)
    with pytest.warns(UserWarning, match="not trained as the target was: trainer.max_epochs=1"):
        refs = load_reference_set(folder, target.manifest, recipe=target.hparams)
    assert "trainer.limit_train_batches=2 (target: None)" in refs.differences


def test_attack_results_name_the_recipe_change(tiny_target, reference_set, tmp_path):
    """The record every reference attack's result carries (`test_results.json`, "references")."""
    from mint.attacks.reference_set import reference_scores
    from mint.models import Target

    target = load_target_checkpoint(tiny_target)
    data = rebuild_membership(target.manifest)
    with pytest.warns(UserWarning, match="not trained as the target was"):
        refs = load_reference_set(copied_set(reference_set, tmp_path), target.manifest, None, target.hparams,
                                  target.sha256, data)  # fmt: skip
    x, z = data.split.members[:40], data.split.nonmembers[:40]
    model = Target.load(tiny_target, ["layer8"])
    _, record = reference_scores(refs, model, data.train.images, x, z, data.train.labels)
    assert "trainer.max_epochs=1 (target: 2)" in record["recipe_differences"]
    assert record["notes"][0].startswith("references NOT trained as the target was: trainer.max_epochs=1")


def swap(a: Path, b: Path) -> None:
    """Exchange two files (or folders)."""
    tmp = a.with_name(a.name + ".swap")
    a.rename(tmp), b.rename(a), tmp.rename(b)


def ref(folder: Path, k: int, name: str = "") -> Path:
    """A file of reference k of a set."""
    return folder / f"ref_{k}" / "version_0" / name


def forge_mask(folder: Path, k: int, kept: np.ndarray) -> None:
    """Give reference k another mask consistently (kept.npy, its checkpoint's record, done.json)."""
    from mint.data.split import index_hash
    from mint.files import file_sha256

    ckpt_path = ref(folder, k, "checkpoints/last.ckpt")
    ckpt = torch.load(ckpt_path, weights_only=True)
    ckpt["ReferenceDataModule"]["manifest"]["reference"]["kept_sha256"] = index_hash(kept)
    torch.save(ckpt, ckpt_path)
    np.save(ref(folder, k, "kept.npy"), kept)
    done = json.loads(ref(folder, k, "done.json").read_text())
    done["reference"]["kept_sha256"] = index_hash(kept)
    done["checkpoint_sha256"] = file_sha256(ckpt_path)
    ref(folder, k, "done.json").write_text(json.dumps(done))


def kept_of(k: int, values, **save) -> Callable:
    """A damage: reference k's kept.npy replaced by `values`."""
    return lambda folder, target: np.save(ref(folder, k, "kept.npy"), values, **save)


def done_of(k: int, text: str | None = None, **changes) -> Callable:
    """A damage: reference k's done.json replaced by `text`, or with `changes` made."""

    def damage(folder: Path, target: Path) -> None:
        done = ref(folder, k, "done.json")
        done.write_text(text if text is not None else json.dumps(json.loads(done.read_text()) | changes))

    return damage


CKPT = "checkpoints/last.ckpt"
SET_CASES = {
    "swapped masks": (lambda f, t: swap(ref(f, 0, "kept.npy"), ref(f, 1, "kept.npy")),
                      "kept.npy of reference 0 .* is not the mask its checkpoint was trained on"),
    "the target's checkpoint": (lambda f, t: shutil.copy(t, ref(f, 0, CKPT)),
                                "reference 0 .* is the audited target's own checkpoint"),
    "swapped folders": (lambda f, t: swap(f / "ref_0", f / "ref_1"),
                        "records reference 1, but lies in the folder of reference 0"),
    "swapped checkpoints": (lambda f, t: swap(ref(f, 0, CKPT), ref(f, 1, CKPT)),
                            "the checkpoint of reference 0 .* is reference 1's"),
    "indices beyond the pool": (kept_of(0, np.array([0, 5, 10**6])),
                                r"names pool images 0 \.\.\. 1000000, but the pool has images 0 \.\.\. 1999"),
    "negative indices": (kept_of(0, np.array([-3, 5])), "names pool images -3"),
    "a float mask": (kept_of(0, np.array([0.5, 2.7])), r"holds float64 \(2,\), not a list of pool indices"),
    "a pickled mask": (kept_of(0, np.array([{"a": 1}]), allow_pickle=True), "holds Python objects"),
    "a truncated done.json": (done_of(0, '{"index": 0, "ke'), "done.json' is damaged"),
    "a done.json list": (done_of(0, "[1, 2]"), "damaged .*a list"),
    "a huge index": (done_of(0, '{"index": 1000000000000}'),
                     "records reference 1000000000000, but lies in the folder of reference 0"),
    "a huge folder": (lambda f, t: shutil.copytree(f / "ref_1", f / "ref_99999999"),
                      r"ref_99999999: reference 99999999: references are numbered 0 \.\.\. 1023"),
    "another set's reference": (done_of(1, key="0" * 16), "different reference sets .*their key differs"),
    "a mask not its seeded row": (lambda f, t: forge_mask(f, 1, np.arange(0, 2000, 2)),
                                  r"masks of references \[1\] .* are not rows \[1\] of the set's seeded"),
}  # fmt: skip


def test_a_damaged_or_mixed_reference_set_is_refused_naming_what(tiny_target, reference_set, tmp_path):
    """Each case on its own copy of the set, read as a detector's test reads it (with the pool)."""
    target = load_target_checkpoint(tiny_target)
    data = rebuild_membership(target.manifest)
    for i, (name, (damage, words)) in enumerate(SET_CASES.items()):
        folder = copied_set(reference_set, tmp_path / str(i))
        damage(folder, tiny_target)
        with pytest.raises(MintError, match=words):
            load_reference_set(folder, target.manifest, None, target.hparams, target.sha256, data)
            pytest.fail(f"{name}: accepted")


def test_a_mixed_reference_set_is_refused_by_the_detector_test(
    tiny_detector, reference_set, tmp_path, refused
):
    """The real entry point: `mint test` with a set whose masks were swapped prints one line, no results."""
    folder = copied_set(reference_set, tmp_path)
    swap(ref(folder, 0, "kept.npy"), ref(folder, 1, "kept.npy"))
    out = tmp_path / "out"  # the run's folder; the activations are the detector fixture's
    sizes = [
        "--data.val_size=40",
        "--data.calibration_size=40",
        "--data.test_size=60",
        "--data.batch_size=50",
    ]
    target = Path(load_target_checkpoint(tiny_detector).path)
    args = detector_args(out, target, "--data.layers=[layer8]", *sizes)
    args[args.index(f"--data.cache_dir={out / 'cache'}")] = (
        f"--data.cache_dir={tiny_detector.parents[3] / 'cache'}"
    )
    refused(["test", *args, f"--ckpt_path={tiny_detector}", f"--model.init_args.references={folder}"],
            "kept.npy of reference 0", "not the mask its checkpoint was trained on")  # fmt: skip
    assert not list(out.rglob("test_results.json"))


def test_mint_references_trains_a_damaged_reference_again_and_never_resumes_a_foreign_one(
    tiny_target, reference_set, tmp_path, capsys, refused
):
    save = Path(shutil.copytree(reference_set, tmp_path / "save", symlinks=True))
    (folder,) = (save / "references").iterdir()
    run = tiny_target.parent.parent
    ref(folder, 0, "done.json").write_text('{"index": 0, "ke')  # truncated
    asked = ["--target-run", str(run), "--count", "2", "--save-dir", str(save), "--other-recipe"]
    records = refs_module.main([*asked, "--", *QUIET, *FAST])
    out = capsys.readouterr().out
    assert "is damaged" in out and "training reference 0 again" in out and "(resuming)" in out
    assert "reference 1 of 2 found, reused" in out
    assert json.loads(ref(folder, 0, "done.json").read_text())["index"] == records[0]["index"] == 0
    # A last.ckpt that is not this reference's (here the target's own) is never resumed from.
    ref(folder, 1, "done.json").unlink()
    shutil.copy(tiny_target, ref(folder, 1, "checkpoints/last.ckpt"))
    refused(["references", *asked, "--index", "1", "--", *QUIET, *FAST],
            "is not a checkpoint of reference 1", "move it away")  # fmt: skip
    assert not ref(folder, 1, "done.json").exists()


def test_two_commands_on_one_set_train_each_reference_once(tiny_target, tmp_path, monkeypatch, capsys):
    """Two threads run `mint references` on one set at once (a fit replaced by a 1 s stand-in).

    Threads rather than processes: two real processes would each spend seconds importing and
    loading before the race; `exclusive_lock` is an flock, which excludes threads holding separate
    open files just as it excludes processes.
    """
    fits, started = [], threading.Event()

    def fake_fit(args: list[str]) -> SimpleNamespace:
        value = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
        log_dir = (
            Path(value["--trainer.logger.init_args.save_dir"]) / value["--trainer.logger.init_args.name"]
        )
        (log_dir / "version_0" / "checkpoints").mkdir(parents=True)
        (log_dir / "version_0" / "checkpoints" / "last.ckpt").write_bytes(b"weights")
        fits.append(value["--data.init_args.index"])
        started.set()
        time.sleep(1.0)  # the other command arrives while this one trains
        reference = {"index": int(value["--data.init_args.index"]), "mode": "online", "seed": 0}
        return SimpleNamespace(trainer=SimpleNamespace(log_dir=str(log_dir / "version_0")),
                               datamodule=SimpleNamespace(manifest={"reference": reference}))  # fmt: skip

    monkeypatch.setattr("mint.cli.main", fake_fit)
    asked = ["--target-run", str(tiny_target.parent.parent), "--count", "1", "--save-dir", str(tmp_path)]
    results, errors = [], []

    def command() -> None:
        try:
            results.append(refs_module.main(asked))
        except Exception as err:  # reported below
            errors.append(err)

    first = threading.Thread(target=command)
    first.start()
    assert started.wait(60)
    second = threading.Thread(target=command)
    second.start()
    first.join(60), second.join(60)
    out = capsys.readouterr().out
    assert not errors and fits == ["0"], (errors, fits, out)
    assert "another process is training reference 0" in out and "reference 0 of 1 found, reused" in out
    assert results[0][0]["checkpoint_sha256"] == results[1][0]["checkpoint_sha256"]
