"""Targets saved as a `torch.export` program (`.pt2`): read layer by layer from the saved graph.

An exported program is a graph of tensor operations with its weights, but a `.pt2` file can hold code
too, which torch runs: `torch.export.load` unpickles weights or constants marked as pickles (with
`weights_only=False`) and evaluates the file's shape expressions as Python (`sympy.sympify`);
`ExportedProgram.module()` executes the file's guard code; and a node of the graph may call any
function reachable from `torch` (`torch.save`). mint loads a file with pickles restricted to tensors
and expressions restricted to sympy arithmetic (anything else is refused, naming it), leaves the
guard code out (torch's own pre-hook still checks the input shapes), and runs the graph only when
every call is a pure aten operator (`mint.models.program_ops`).

Its layers are read without retracing: each operation of the graph records the module it came from
(`nn_module_stack`), so the output of module `layer4` is the value of the last operation recorded
inside `layer4`, captured while an FX interpreter evaluates the graph.
"""

from __future__ import annotations

import ast
import hashlib
import io
import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, fx, nn

from mint.errors import MintError
from mint.models.external import ProgramTarget
from mint.models.program_ops import PURE_ONLY, check_fx_module

# A shape expression is read by sympy.sympify, which evaluates it as Python. Allowed: calls of
# sympy's expression classes (and torch's own sympy functions, which the caller passes as `locals`)
# on numbers and symbols; a string only as the first argument of Symbol and Float, which take it
# as a name or a number (other classes would sympify it: evaluate it again).
SYMPY_CALLS = frozenset(
    "Symbol Integer Float Rational Add Mul Pow Max Min Abs Mod floor ceiling sqrt Eq Ne Lt Le Gt Ge "
    "StrictLessThan StrictGreaterThan LessThan GreaterThan Equality Unequality And Or Not Piecewise "
    "ExprCondPair Tuple BooleanTrue BooleanFalse Half One Zero NegativeOne Infinity NegativeInfinity "
    "NaN ComplexInfinity".split()
)
SYMPY_NAMES = frozenset({"oo", "zoo", "nan", "true", "false", "pi", "E", "I"})
STRING_TAKERS = frozenset({"Symbol", "Float"})
SYMBOL = re.compile(r"[a-z]{1,8}\d+$")  # s77, u0: a name sympy makes a Symbol of
SHAPES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant, ast.keyword,
          ast.Load, ast.operator, ast.unaryop)  # fmt: skip


def expression_problem(text: str, functions: dict) -> str | None:
    """What in a shape expression is more than sympy arithmetic, or None."""
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "is not an expression"
    named = SYMPY_CALLS | SYMPY_NAMES | set(functions)
    strings = set()  # the string constants in a place that takes a string
    for node in ast.walk(tree):
        if not isinstance(node, SHAPES):
            return f"holds {type(node).__name__}"
        if isinstance(node, ast.Name) and node.id not in named and not SYMBOL.match(node.id):
            return f"names {node.id[:40]!r}"
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else ""
            if name not in SYMPY_CALLS and name not in functions:
                return f"calls {ast.unparse(node.func)[:40]}"
            if name in STRING_TAKERS and node.args and isinstance(node.args[0], ast.Constant):
                strings.add(id(node.args[0]))
            if any(k.arg is None or not isinstance(k.value, ast.Constant) for k in node.keywords):
                return "passes computed keyword arguments"
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and id(node) not in strings:
            return "holds a string sympy would evaluate"
    return None


class _Refused(Exception):
    """Raised inside `torch.export.load` where the file holds code; the reason is kept in `found`."""


@contextmanager
def _loading_without_code(found: list[str]) -> Iterator[None]:
    """During `torch.export.load`: pickles may hold only tensors, expressions only sympy arithmetic.

    The functions torch calls to read pickles and expressions are replaced for the duration of the
    load (mint loads a target in its main thread, before any data loader starts); what is refused
    is appended to `found`, which the caller reads whatever torch makes of the exception.
    """
    import sympy

    load, sympify = torch.load, sympy.sympify

    def refuse(what: str) -> None:
        found.append(what)
        raise _Refused(what)

    def tensors_only(*args, **kwargs):
        try:
            return load(*args, **(kwargs | {"weights_only": True}))
        except pickle.UnpicklingError:
            refuse("a pickle that holds more than tensors")

    def checked(expr, *args, **kwargs):
        if isinstance(expr, str):
            names = kwargs.get("locals") or (args[0] if args else None) or {}
            problem = expression_problem(expr, names)
            if problem:
                refuse(f"the shape expression {expr[:60]!r}, which {problem}")
        return sympify(expr, *args, **kwargs)

    def no_pickle(*args, **kwargs):
        refuse("a pickled object")

    patches = [(torch, "load", tensors_only), (pickle, "loads", no_pickle), (pickle, "load", no_pickle),
               (torch._C, "_pickle_load_obj", no_pickle), (sympy, "sympify", checked)]  # fmt: skip
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    try:
        for owner, name, new in patches:
            setattr(owner, name, new)
        yield
    finally:
        for owner, name, old in saved:
            setattr(owner, name, old)


def _module_outputs(graph: fx.Graph) -> dict[str, fx.Node]:
    """{module path: the node computing its output}, in the order the modules first run."""
    last: dict[str, fx.Node] = {}
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack") if node.op == "call_function" else None
        if not stack or not isinstance(node.meta.get("val"), Tensor):  # not a size (sym_size) or a flag
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
        module: the program's module (`ExportedProgram.module()`); refused unless every call of
            its graph is a pure aten operator.
        source: the file it came from, for messages.
    """

    def __init__(self, module: fx.GraphModule, source: str = "the exported program") -> None:
        super().__init__()
        check_fx_module(module, source)  # before it ever runs
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

    def _check_shape(self, images: Tensor) -> None:
        """Refuse images whose shape differs from the program's input where it was exported fixed."""
        node = next(n for n in self.module.graph.nodes if n.op == "placeholder")
        val = node.meta.get("val")
        shape = tuple(val.shape) if isinstance(val, Tensor) else None
        fixed = shape is not None and (
            len(shape) != images.dim()
            or any(isinstance(d, int) and d != size for d, size in zip(shape, images.shape, strict=True))
        )
        if fixed:  # (a symbolic dimension, the batch, is no int: it takes any size)
            raise ValueError(f"it was exported for images of shape {shape}")

    def read(self, images: Tensor, names: list[str]) -> dict[str, Tensor]:
        """{name: activation} for module paths in `names` (and "output": the logits)."""
        unknown = [n for n in names if n not in self.outputs and n != "output"]
        if unknown:
            raise MintError(
                f"unknown layer(s) {unknown} of the exported program; valid names: {self.layer_names()}"
            )
        wanted: dict[str, list[str]] = {}  # node name: the modules it is the output of (encoder, encoder.ln)
        for name in dict.fromkeys(n for n in names if n != "output"):
            wanted.setdefault(self.outputs[name].name, []).append(name)
        captured: dict[str, Tensor] = {}

        class Capture(fx.Interpreter):
            def run_node(self, node: fx.Node):
                value = super().run_node(node)
                for name in wanted.get(node.name, ()):  # a copy: an in-place operation (relu_) may follow it
                    captured[name] = value.clone()
                return value

        try:
            self._check_shape(images)  # (an interpreter runs no pre-hook: torch's shape check is skipped)
            logits = Capture(self.module).run(images)
        except Exception as err:  # a program exported for one batch size or image size
            raise MintError(
                f"the exported program does not run on images of shape {tuple(images.shape)} ({err}). "
                "Export it for this image size with a dynamic batch dimension: dynamic_shapes="
                "{'x': {0: torch.export.Dim('batch')}}"
            ) from err
        if "output" in names:
            captured["output"] = logits[0] if isinstance(logits, tuple | list) else logits
        return captured


SAVE_HINT = (
    "Save one with torch.export.save(torch.export.export(model.eval(), (example_images,)), 'model.pt2')"
)


class ExportedTarget(ProgramTarget):
    """A classifier saved with `torch.export.save` (a `.pt2` file).

    Loaded without running code the file holds (pickles of more than tensors, shape expressions
    beyond sympy arithmetic, guard code), and run only when every call of its graph is a pure aten
    operator; anything else is refused, naming it.

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
        data = path.read_bytes()  # loaded from these bytes: the sha256 is of what runs
        found: list[str] = []
        try:
            with _loading_without_code(found):
                program = torch.export.load(io.BytesIO(data))
        except Exception as err:  # a zip of another kind, a TorchScript file, a damaged file
            if not found:
                what = type(err).__name__
                raise MintError(f"{path} is not a torch.export program ({what}). {SAVE_HINT}") from err
        if found:  # (also where torch caught the refusal and went on)
            raise MintError(
                f"{path} holds {found[0]}: torch would run it as code while loading the file, and "
                f"{PURE_ONLY}. {SAVE_HINT}"
            )
        # check_guards=False: the guards are code of the file, executed by module(); torch's pre-hook
        # checks the input shapes against the program's ranges instead.
        module = program.module(check_guards=False)
        return ExportedNetwork(module, str(path)), hashlib.sha256(data).hexdigest()
