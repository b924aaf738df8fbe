"""The kinds of target trained elsewhere that a config or a recorded result may name: a fixed table.

A detector checkpoint records its target's config (`class_path`, `init_args`). Rebuilding the
target from it goes through this table only, so a file can name nothing but mint's own classes;
a `FactoryTarget` (the user's code) is rebuilt only when the user names the same factory again.
"""

from __future__ import annotations

from mint.errors import MintError
from mint.models.exported import ExportedTarget
from mint.models.external import ExternalTarget, TimmTarget, TorchvisionTarget
from mint.models.factory import FactoryTarget
from mint.models.scripted import ScriptTarget

KINDS: dict[str, type[ExternalTarget]] = {
    cls.__name__: cls for cls in (TorchvisionTarget, TimmTarget, FactoryTarget, ExportedTarget, ScriptTarget)
}


def external_from_config(config: dict, path: str | None, trust_factory: str | None = None) -> ExternalTarget:
    """The target kind a recorded config names (`mint.models.<Kind>` only), built from its arguments.

    Args:
        config: `{"class_path": ..., "init_args": {...}}` as `ExternalTarget.config()` wrote it.
        path: the file the record came from, for messages.
        trust_factory: the factory (`package.module:function`) the user allows to run, if any.
    """
    name = str(config.get("class_path", "")).rsplit(".", 1)[-1]
    if name not in KINDS or not str(config["class_path"]).startswith("mint."):
        raise MintError(f"{path} names the target kind {config.get('class_path')!r}, which is not mint's")
    args = dict(config.get("init_args", {}))
    if name == "FactoryTarget" and args.get("factory") != trust_factory:
        raise MintError(
            f"the target of {path} is built by the code {args.get('factory')!r} (a FactoryTarget); mint "
            "runs code a file names only when you name it too: give the same `target:` in your config "
            f"(or, to `mint audit`, --trust-factory {args.get('factory')})"
        )
    try:
        return KINDS[name](**args)
    except TypeError as err:  # arguments of another version of mint
        raise MintError(f"{path} records arguments {name} does not take ({err}): refit the detector") from err
