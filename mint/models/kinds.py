"""The kinds of target trained elsewhere that a config or a recorded result may name: a fixed table.

A detector checkpoint records its target's config (`class_path`, `init_args`). Rebuilding the
target from it goes through this table only, so a file can name nothing but mint's own classes;
a `FactoryTarget` (the user's code) is rebuilt only when the user names the same factory again, and
the same arguments for it.
"""

from __future__ import annotations

import json

from torch import nn

from mint.errors import MintError
from mint.models.exported import ExportedTarget
from mint.models.external import ExternalTarget
from mint.models.factory import FactoryTarget
from mint.models.hf_target import HuggingFaceTarget
from mint.models.module_target import ModuleTarget
from mint.models.scripted import ScriptTarget
from mint.models.timm_target import TimmTarget
from mint.models.torchvision_target import TorchvisionTarget

KINDS: dict[str, type[ExternalTarget]] = {
    cls.__name__: cls
    for cls in (
        TorchvisionTarget,
        TimmTarget,
        FactoryTarget,
        ExportedTarget,
        ScriptTarget,
        ModuleTarget,
        HuggingFaceTarget,
    )
}


def shown_args(args: dict) -> str:
    """Arguments as JSON, cut to 200 characters for a message."""
    text = json.dumps(args, sort_keys=True, default=str)
    return text if len(text) <= 200 else text[:200] + "... (cut)"


def json_args(args: dict | None) -> dict:
    """Arguments as JSON gives them back (tuples as lists), so a recorded and a typed set compare."""
    return json.loads(json.dumps(args or {}, sort_keys=True, default=str))


def given_module(module: nn.Module | None, recorded: str, path: str | None) -> nn.Module:
    """The model given again for a `ModuleTarget` record, if it is of the recorded class."""
    if module is None:
        raise MintError(
            f"the target of {path} is a model that was given in Python (a {recorded}), which no file "
            "can rebuild: give the model again, in Python (mint.score(detector, images, model=model))"
        )
    given = f"{type(module).__module__}.{type(module).__qualname__}"
    if given != recorded:
        raise MintError(f"the target of {path} was a {recorded}, but the model given is a {given}")
    return module


def refuse_untrusted_factory(
    args: dict, path: str | None, trust_factory: str | None, trust_factory_args: dict | None
) -> None:
    """Refuse a recorded `FactoryTarget` unless the user names its function and the arguments it gets.

    Trusting a function is not trusting every call of it: its `factory_args` come from the file too
    (a path to write, a command to run, for a function that takes one).
    """
    factory = args.get("factory")
    if factory != trust_factory:
        raise MintError(
            f"the target of {path} is built by the code {factory!r} (a FactoryTarget); mint "
            "runs code a file names only when you name it too: give the same `target:` in your config "
            f"(or, to `mint audit`, --trust-factory {factory})"
        )
    recorded, given = json_args(args.get("factory_args")), json_args(trust_factory_args)
    if recorded != given:
        yours = f", not with {shown_args(given)} as you gave" if given else ", and you gave none"
        raise MintError(
            f"the target of {path} calls {factory!r} with factory_args {shown_args(recorded)}{yours}; mint "
            "calls code a file names only with the arguments you name too: check them, and give the same "
            f"factory_args in your config (or, to `mint audit`, --trust-factory-args "
            f"'{shown_args(recorded)}')"
        )


def external_from_config(
    config: dict,
    path: str | None,
    trust_factory: str | None = None,
    trust_factory_args: dict | None = None,
    module: nn.Module | None = None,
) -> ExternalTarget:
    """The target kind a recorded config names (`mint.models.<Kind>` only), built from its arguments.

    Args:
        config: `{"class_path": ..., "init_args": {...}}` as `ExternalTarget.config()` wrote it.
        path: the file the record came from, for messages.
        trust_factory: the factory (`package.module:function`) the user allows to run, if any.
        trust_factory_args: the keyword arguments the user allows it to be called with; a recorded
            `FactoryTarget` is rebuilt only when its `factory_args` are these (None: no arguments).
        module: the model of a `ModuleTarget` (a classifier given in Python), given again: a file
            records its class's name and its weights, not the class.
    """
    name = str(config.get("class_path", "")).rsplit(".", 1)[-1]
    if name not in KINDS or not str(config["class_path"]).startswith("mint."):
        raise MintError(f"{path} names the target kind {config.get('class_path')!r}, which is not mint's")
    args = dict(config.get("init_args", {}))
    if name == "FactoryTarget":
        refuse_untrusted_factory(args, path, trust_factory, trust_factory_args)
    if name == "ModuleTarget":
        args["module"] = given_module(module, str(args.get("module")), path)
    try:
        return KINDS[name](**args)
    except TypeError as err:  # arguments of another version of mint
        raise MintError(f"{path} records arguments {name} does not take ({err}): refit the detector") from err
