"""Targets saved as TorchScript (`torch.jit.save` of a scripted or traced model): read layer by layer.

A TorchScript file holds code: TorchScript, a graph of torch operators, not pickled Python. Running
it can still act outside the graph (`torch.save` in a forward writes any file; a `__setstate__`
runs while the file is loaded). So a file is loaded only when its code defines no `__setstate__` /
`__getstate__`, and its forward graph, inlined (every method and function it calls, the bodies of
`if` and loops too), is run only when every operation is a pure tensor operation
(`mint.models.program_ops`); anything else is refused, naming the operation. `torch.jit` is
deprecated upstream in favour of `torch.export`; prefer a `.pt2` program (`ExportedTarget`).

ScriptModules run no Python forward hooks, so layers are read from the saved graph, without the
Python model and without retracing. A scripted and a traced file both store each module's code
separately, joined by calls (`prim::CallMethod`). The forward graph is copied and inlined, and
every inlined operation then records the chain of module instances that called it
(`Node.getModuleHierarchy()`, e.g. `layer1(Sequential).0(BasicBlock).conv1(Conv2d)`). The output of
module `layer1.0` is the last tensor computed inside `layer1.0` that is used outside it. Reading
layers adds a copy (`aten::clone`) of each of those values as an extra output of the copied graph,
run as a TorchScript function on the loaded module: the copy is taken where the value is computed,
before in-place operations that come later (a ReLU with `inplace=True` after `bn1`) can change it.

Readable: the outputs of all submodules called (nested ones too: `layer1.0.conv1`) and "output" (what
`forward` returns). Not readable: modules called inside control flow of a scripted model (an `if` or a
loop: their values live inside it), modules that compute nothing (`nn.Identity`), and operations of
the root module itself (a `torch.flatten` in `forward`). A frozen file (`torch.jit.freeze`,
`torch.jit.optimize_for_inference`) has its modules inlined before saving: only "output" is readable.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn

from mint.errors import MintError
from mint.models.external import ProgramTarget
from mint.models.program_ops import check_script_block, check_torchscript_archive

SAVE_HINT = (
    "save one with torch.jit.save(torch.jit.script(model.eval()), 'model.pt') (not frozen), or better "
    "with torch.export.save(torch.export.export(model.eval(), (images,)), 'model.pt2') for ExportedTarget"
)


def _module_path(node: torch._C.Node) -> str:
    """The dotted path of the module instance that ran `node` (`layer1.0.conv1`), '' for the root."""
    # "SELF(ResNet).layer1(Sequential).0(BasicBlock)": SELF is a method called on the same module,
    # UNKNOWN_INSTANCE a function called (F.relu); neither is a step down the module tree.
    calls = re.findall(r"([^.()]+)\([^()]*\)", node.getModuleHierarchy())
    return ".".join(name for name in calls if name not in ("SELF", "UNKNOWN_INSTANCE"))


def _inside(path: str, module: str) -> bool:
    return path == module or path.startswith(module + ".")


def _inlined(module: torch.jit.ScriptModule) -> tuple[torch._C.Graph, dict[str, torch._C.Value]]:
    """A copy of the forward graph, inlined, and {module path: the value it returns}, in forward order."""
    graph = module.forward.graph.copy()  # the module's own graph stays as saved
    torch._C._jit_pass_inline(graph)
    tensor = torch._C.TensorType.get()
    last: dict[str, tuple[int, int, torch._C.Value]] = {}
    # Only the top-level nodes: a value computed inside an `if` or a loop cannot be returned as it is.
    for position, node in enumerate(graph.nodes()):
        path = _module_path(node)
        if not path or node.kind() in ("prim::GetAttr", "prim::Constant"):  # weights, not activations
            continue
        for value in node.outputs():
            if not value.type().isSubtypeOf(tensor):
                continue
            users = [_module_path(use.user) for use in value.uses()]
            parts = path.split(".")
            for depth in range(1, len(parts) + 1):
                owner = ".".join(parts[:depth])
                if any(not _inside(user, owner) for user in users):  # it leaves `owner`: owner returns it
                    last[owner] = (position, depth, value)  # later values of a module overwrite earlier ones
    ordered = sorted(last.items(), key=lambda item: item[1][:2])  # forward order, outer module first
    return graph, {name: value for name, (_, _, value) in ordered}


class ScriptedNetwork(nn.Module):
    """A loaded TorchScript module: `forward` gives the logits, `read` any of its layers.

    Args:
        module: the loaded module (`torch.jit.load`); it is kept in eval mode. Refused unless its
            inlined forward graph holds only pure tensor operations.
        source: the file it came from, for messages.
    """

    def __init__(self, module: torch.jit.ScriptModule, source: str = "the TorchScript module") -> None:
        super().__init__()
        graph, outputs = _inlined(module)
        check_script_block(graph.block(), source)  # before it ever runs (eval() runs nothing of it)
        self.module = module.eval()
        returned = next(iter(graph.outputs()))
        self.names = [*outputs]
        self.output_is_last = bool(outputs) and outputs[self.names[-1]].debugName() == returned.debugName()
        # Arguments after the images take their defaults (a scripted forward(x, mask=None)).
        extra = module.forward.schema.arguments[2:]
        if not all(arg.has_default_value() for arg in extra):
            raise MintError(f"the TorchScript forward needs arguments besides the images: {extra}")
        self.defaults = [arg.default_value for arg in extra]
        self.readers: dict[tuple[str, ...], torch.jit.ScriptFunction] = {}

    def __getstate__(self) -> dict:
        # Compiled readers cannot be copied (Lightning deep-copies modules): built again on first read.
        return {**super().__getstate__(), "readers": {}}

    def layer_names(self) -> list[str]:
        """Readable layers in forward order; the last is the output (the logits)."""
        return [*self.names] if self.output_is_last else [*self.names, "output"]

    def train(self, mode: bool = True) -> ScriptedNetwork:
        """Stay in eval mode: a traced graph is fixed at trace time, and a target is only read."""
        self.training = False
        return self

    def forward(self, images: Tensor) -> Tensor:
        out = self.module(images, *self.defaults)
        return out[0] if isinstance(out, tuple | list) else out

    def reader(self, names: tuple[str, ...]) -> torch.jit.ScriptFunction:
        """A function of (module, images, ...) returning (forward's output, *a copy of each layer)."""
        if names not in self.readers:
            graph, outputs = _inlined(self.module)  # a fresh copy: its values are the ones to return
            nodes = list(graph.nodes())
            none = graph.insertConstant(None)  # memory_format of aten::clone
            none.node().moveBefore(nodes[0])
            copies = []
            for name in names:
                value = outputs[name]
                clone = graph.create("aten::clone", [value, none])
                clone.insertAfter(value.node())  # before any later in-place operation changes it
                clone.output().setType(value.type())
                copies.append(clone.output())
            returned = next(iter(graph.outputs()))
            result = graph.create("prim::TupleConstruct", [returned, *copies])
            result.insertBefore(graph.return_node())
            result.output().setType(torch._C.TupleType([v.type() for v in (returned, *copies)]))
            graph.eraseOutput(0)
            graph.registerOutput(result.output())
            self.readers[names] = torch._C._create_function_from_graph("mint_read_layers", graph)
        return self.readers[names]

    def read(self, images: Tensor, names: list[str]) -> dict[str, Tensor]:
        """{name: activation} for module paths in `names` (and "output": the logits)."""
        unknown = [n for n in names if n not in self.names and n != "output"]
        if unknown:
            frozen = "" if self.names else f" (the file records no module calls: {SAVE_HINT})"
            raise MintError(
                f"unknown layer(s) {unknown} of the TorchScript module; valid names: "
                f"{self.layer_names()}{frozen}"
            )
        layers = tuple(dict.fromkeys(n for n in names if n != "output"))
        reader = self.reader(layers)
        try:
            out, *values = reader(self.module._c, images, *self.defaults)
        except Exception as err:  # a traced graph can hold the batch size or image size it was traced at
            raise MintError(
                f"the TorchScript module does not run on images of shape {tuple(images.shape)} ({err}). "
                "Trace it with images of this size, or script it with torch.jit.script"
            ) from err
        read = dict(zip(layers, values, strict=True))
        if "output" in names:
            read["output"] = out[0] if isinstance(out, tuple | list) else out
        return read


def _not_torchscript(path: Path) -> str:
    """What a file that `torch.jit.load` refuses holds instead, as far as its zip listing tells."""
    if not zipfile.is_zipfile(path):
        return "it is not a zip archive, as TorchScript files are"
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(n.endswith(("/archive_format", "models/model.json")) for n in names):
        return "it is a torch.export program (.pt2): read it with ExportedTarget"
    if not any(n.endswith("/constants.pkl") for n in names):
        return "it is a torch.save checkpoint (weights or a pickled model), not a TorchScript module"
    return "it is a damaged or newer TorchScript file"


class ScriptTarget(ProgramTarget):
    """A classifier saved with `torch.jit.save` (a `.pt` / `.ts` file of TorchScript).

    Loading it compiles the TorchScript code stored in the file (torch operators), not pickled Python;
    a file defining `__setstate__` (run while loading) or a forward calling anything but pure tensor
    operations (`torch.save`, `print`) is refused. `torch.jit` is deprecated upstream in favour of
    `torch.export`: prefer a `.pt2` file.

    Args:
        program: the TorchScript file.
        image_size: side of the square images it reads (a traced file may only run at its trace size).
        mean: per-channel mean subtracted from images in [0, 1].
        std: per-channel standard deviation images are divided by.
    """

    def network(self, weights: bool = True) -> tuple[ScriptedNetwork, str]:
        """The TorchScript module as a network, and the file's sha256 (the graph is the file: always read)."""
        path = Path(self.program)
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "not found"
            raise MintError(f"TorchScript file {what}: {str(path)!r}; {SAVE_HINT}")
        data = path.read_bytes()  # loaded from these bytes: the sha256 is of what runs
        check_torchscript_archive(io.BytesIO(data), str(path))
        try:
            with warnings.catch_warnings():  # "torch.jit.load is deprecated": said in the docs instead
                warnings.filterwarnings(
                    "ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning
                )
                module = torch.jit.load(io.BytesIO(data), map_location="cpu")
        except Exception as err:
            raise MintError(
                f"{path} is not a TorchScript file: {_not_torchscript(path)}; {SAVE_HINT}"
            ) from err
        return ScriptedNetwork(module, str(path)), hashlib.sha256(data).hexdigest()
