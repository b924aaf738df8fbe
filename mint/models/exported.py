"""Targets saved as a `torch.export` program (`.pt2`): read layer by layer from the saved graph.

An exported program is a graph of tensor operations with its weights; no Python of the file's author
runs when it is loaded (`torch.export.load`) or evaluated. Its layers are read without retracing:
each operation of the graph records the module it came from (`nn_module_stack`), so the output of
module `layer4` is the value of the last operation recorded inside `layer4`, captured while an FX
interpreter evaluates the graph.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, fx, nn

from mint.errors import MintError
from mint.models.external import ProgramTarget


def _module_outputs(graph: fx.Graph) -> dict[str, fx.Node]:
    """{module path: the node computing its output}, in the order the modules first run."""
    last: dict[str, fx.Node] = {}
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack") if node.op == "call_function" else None
        if not stack:
            continue
        # The innermost module ("layer4.1.conv2"); an operation of the root module itself (a
        # functional flatten) is named by its node, as torchvision's FX names it.
        path = list(stack.values())[-1][0] or node.name
        parts = path.split(".")
        for depth in range(1, len(parts) + 1):
            last[".".join(parts[:depth])] = node  # later operations of a module overwrite earlier ones
    position = {node: i for i, node in enumerate(graph.nodes)}
    return dict(sorted(last.items(), key=lambda item: position[item[1]]))  # stable: outer module first


class ExportedNetwork(nn.Module):
    """A loaded exported program as a module: `forward` gives the logits, `read` any of its layers.

    Args:
        module: the program's module (`ExportedProgram.module()`).
    """

    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__()
        self.module = module
        self.outputs = _module_outputs(module.graph)
        if not self.outputs:
            raise MintError(
                "the exported program records no modules (no nn_module_stack): its layers are unknown"
            )

    def layer_names(self) -> list[str]:
        """Readable layers in forward order; the last is the output (the logits)."""
        (result,) = (n for n in self.module.graph.nodes if n.op == "output")
        returned = result.args[0][0] if isinstance(result.args[0], tuple | list) else result.args[0]
        last = list(self.outputs)[-1]
        return [*self.outputs] if self.outputs[last] is returned else [*self.outputs, "output"]

    def train(self, mode: bool = True) -> ExportedNetwork:
        """Stay as exported: an exported program has no train mode (it refuses `train()`)."""
        self.training = False
        return self

    def forward(self, images: Tensor) -> Tensor:
        return self.module(images)

    def read(self, images: Tensor, names: list[str]) -> dict[str, Tensor]:
        """{name: activation} for module paths in `names` (and "output": the logits)."""
        unknown = [n for n in names if n not in self.outputs and n != "output"]
        if unknown:
            raise MintError(
                f"unknown layer(s) {unknown} of the exported program; valid names: {self.layer_names()}"
            )
        wanted = {self.outputs[n].name: n for n in names if n != "output"}
        captured: dict[str, Tensor] = {}

        class Capture(fx.Interpreter):
            def run_node(self, node: fx.Node):
                value = super().run_node(node)
                if node.name in wanted:  # a copy: an in-place operation (relu_) may follow it
                    captured[wanted[node.name]] = value.clone()
                return value

        try:
            logits = Capture(self.module).run(images)
        except Exception as err:  # guards of a program exported for one batch size or image size
            raise MintError(
                f"the exported program does not run on images of shape {tuple(images.shape)} ({err}). "
                "Export it for this image size with a dynamic batch dimension: dynamic_shapes="
                "{'x': {0: torch.export.Dim('batch')}}"
            ) from err
        if "output" in names:
            captured["output"] = logits[0] if isinstance(logits, tuple | list) else logits
        return captured


class ExportedTarget(ProgramTarget):
    """A classifier saved with `torch.export.save` (a `.pt2` file).

    Args:
        program: the `.pt2` file.
        image_size: side of the square images it reads (the program was exported for one size).
        mean: per-channel mean subtracted from images in [0, 1].
        std: per-channel standard deviation images are divided by.
    """

    def network(self, weights: bool = True) -> tuple[ExportedNetwork, str]:
        """The program as a module, and the file's sha256 (the graph is the file: always read)."""
        path = Path(self.program)
        if not path.is_file():
            raise MintError(f"exported program not found: {str(path)!r}")
        data = path.read_bytes()
        try:
            program = torch.export.load(path)
        except Exception as err:  # a zip of another kind, a TorchScript file, a damaged file
            raise MintError(
                f"{path} is not a torch.export program ({type(err).__name__}). Save one with "
                "torch.export.save(torch.export.export(model.eval(), (example_images,)), 'model.pt2')"
            ) from err
        return ExportedNetwork(program.module()), hashlib.sha256(data).hexdigest()
