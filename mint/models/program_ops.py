"""What a program file may do when mint runs it: pure tensor operations, checked before it first runs.

A TorchScript or torch.export file is a graph of operators, but a few operators act outside the
graph: `aten::save` writes a file, `aten::from_file` maps one (and writes it back when shared),
`prim::Print` prints, `aten::manual_seed` reseeds the generators mint draws its splits from. Every
operation of the graph a program runs (nested blocks of `if` and loops too) is checked here before
mint runs it once; a graph holding any other is refused, with one line naming the operation.

The rule, and why it has this shape:
- `aten` (and torch.export's `prims`) operators are allowed unless they act outside the graph. An
  operator's schema does not say whether it does I/O (`aten::save` is `save(t item, str filename)
  -> ()`: no alias or mutation annotation, like any pure operator), so the schema is read for what
  it does tell: an argument named `filename` (a file is read or written), or nothing returned and
  no argument written (an operator called only for an effect elsewhere: printing, reseeding,
  running backward); plus a table of named ones. In-place operators (`relu_`) write only tensors
  the graph holds, and are allowed: every ResNet has them.
- `prim` operators are the language's structure (constants, attributes, lists, tuples, `if`,
  loops, raising an exception, type queries): only those listed are allowed. Calls left after
  inlining (an interface method), `prim::SetAttr` (the module changing itself as it runs),
  `prim::fork`, `prim::PythonOp` and every other kind are refused.
- Any other namespace (a custom operator library) is refused: mint cannot know what it does.
"""

from __future__ import annotations

import math
import operator
import re
import zipfile
from typing import BinaryIO

import torch

from mint.errors import MintError

PURE_ONLY = "mint runs only graphs of pure tensor operations"
# aten operators acting outside the graph, named by what they do (the general rules below catch
# others of their kind; these read better in the message).
ATEN_EFFECTS = {
    "aten::save": "writes files",
    "aten::from_file": "reads files (and writes them back when shared)",
    "aten::_print": "prints",
    "aten::manual_seed": "reseeds the random number generators",
    "aten::seed": "reseeds the random number generators",
    "aten::set_grad_enabled": "switches autograd on or off for the whole process",
    "aten::backward": "runs a backward pass",
}
# Called only to check a condition (they raise, as prim::RaiseException does) or to warn (scripted
# torchvision models do, through Python's warnings): no effect beyond the message.
ATEN_CHECKS = ("aten::warn", "aten::_assert", "aten::_validate", "aten::sym_constrain_range",
               "aten::_linalg_check_errors")  # fmt: skip
PRIM_ALLOWED = frozenset(
    "prim::" + name
    for name in (
        "Constant GetAttr If Loop ListConstruct ListUnpack TupleConstruct TupleUnpack TupleIndex "
        "TupleSlice DictConstruct RaiseException Uninitialized unchecked_cast unchecked_unwrap_optional "
        "isinstance NumToTensor device dtype layout requires_grad type data name itemsize nbytes "
        "is_cuda is_cpu is_nested is_quantized is_sparse is_sparse_csr is_mkldnn is_meta is_xpu "
        "is_mps min max abs index tolist rangelist StringIndex EnumName EnumValue"
    ).split()
)
PRIM_EFFECTS = {
    "prim::Print": "prints",
    "prim::SetAttr": "changes the module as it runs",
    "prim::PythonOp": "runs Python",
    "prim::CallMethod": "calls a method mint cannot inline (an interface)",
    "prim::CallFunction": "calls a function mint cannot inline",
    "prim::fork": "starts a task in parallel",
}


def _writes_or_returns(schema: torch._C.FunctionSchema) -> bool:
    written = any(arg.alias_info is not None and arg.alias_info.is_write for arg in schema.arguments)
    return bool(schema.returns) or written


def op_refusal(name: str, schema: torch._C.FunctionSchema | None) -> str | None:
    """Why the operator `name` (`aten::save`) may not run, or None where it is a pure operation."""
    namespace = name.split("::", 1)[0]
    if namespace == "prim":
        if name in PRIM_ALLOWED:
            return None
        return PRIM_EFFECTS.get(name, "is not among the operations mint checks")
    if namespace not in ("aten", "prims"):
        return "is not a torch operator (mint cannot know what it does)"
    if name in ATEN_EFFECTS:
        return ATEN_EFFECTS[name]
    if name.startswith(ATEN_CHECKS):
        return None
    if schema is None:
        return "is an operator torch does not describe"
    if any(arg.name == "filename" for arg in schema.arguments):
        return "reads or writes files"
    if not _writes_or_returns(schema):
        return "acts only outside the graph"
    return None


def refuse(source: str, what: str, reason: str) -> None:
    """Raise the one-line refusal of a program that runs `what`."""
    raise MintError(f"{source} calls {what}, which {reason}: {PURE_ONLY}")


# --- TorchScript ---------------------------------------------------------------------------------

# `torch.jit.load` runs a class's TorchScript `__setstate__` while it reads the file (and a deep copy
# runs `__getstate__` with it): before mint could check anything. Scripted and traced nn.Modules
# define neither.
STATE_METHOD = re.compile(rb"\bdef\s+(__setstate__|__getstate__)\s*\(")


def check_torchscript_archive(file: BinaryIO, source: str) -> None:
    """Refuse a TorchScript file whose code defines methods torch runs while loading or copying it."""
    try:
        with zipfile.ZipFile(file) as archive:
            for info in archive.infolist():
                if "/code/" in info.filename and info.filename.endswith(".py"):
                    found = STATE_METHOD.search(archive.read(info))
                    if found:
                        raise MintError(
                            f"{source} defines {found.group(1).decode()} ({info.filename}), which torch "
                            "runs outside forward (loading or copying the module), before mint can check "
                            f"it: {PURE_ONLY}; save the model without a custom __setstate__ / __getstate__"
                        )
    except (zipfile.BadZipFile, OSError):
        return  # not a zip: torch.jit.load refuses it, and the caller says what the file is


def check_script_block(block: torch._C.Block, source: str) -> None:
    """Refuse a TorchScript graph (inlined) holding an operation that is not pure, blocks included."""
    for node in block.nodes():
        kind = node.kind()
        text = node.schema()
        schema = torch._C.parse_schema(text) if text != "(no schema)" else None
        reason = op_refusal(kind, schema)
        if reason:
            refuse(source, kind, reason)
        for inner in node.blocks():  # the bodies of `if` and loops
            check_script_block(inner, source)


# --- torch.export --------------------------------------------------------------------------------

# Arithmetic on symbolic sizes (a dynamic batch dimension): torch.export writes these as calls.
OPERATORS = "add sub mul truediv floordiv mod pow neg pos eq ne lt le gt ge and_ or_ lshift rshift getitem"
SYMBOLIC = (
    *(getattr(operator, name) for name in OPERATORS.split()),
    *(math.trunc, math.floor, math.ceil),
    *(torch.sym_int, torch.sym_float, torch.sym_max, torch.sym_min, torch.sym_not, torch.sym_ite),
    *(torch.sym_sqrt, torch.sym_sum),
)


def _target_name(target: object) -> str:
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or repr(target)
    module = getattr(target, "__module__", None)
    return f"{module}.{name}"[:120] if module else str(name)[:120]


def check_fx_module(module: torch.nn.Module, source: str) -> None:
    """Refuse an exported program's module holding a call that is not a pure torch operation."""
    for sub in module.modules():
        if not isinstance(sub, torch.fx.GraphModule):
            continue
        for node in sub.graph.nodes:
            if node.op in ("placeholder", "output", "get_attr"):
                continue
            target = node.target
            if node.op != "call_function":
                refuse(source, f"{node.op} {str(target)[:80]!r}", "a saved program does not hold")
            elif isinstance(target, torch._ops.OpOverload):
                reason = op_refusal(target._schema.name, target._schema)
                if reason:
                    refuse(source, target._schema.name, reason)
            elif not any(target is allowed for allowed in SYMBOLIC):  # (a target may be unhashable)
                refuse(source, _target_name(target), "is not an aten operator mint can check")
