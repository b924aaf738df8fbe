"""The shape of the package: short modules and functions, imports in one direction only."""

import ast
from pathlib import Path

import mint

PACKAGE = Path(mint.__file__).parent
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60  # docstring included
# Low to high: a module imports only from its own level or below. The frozen target (`models`) sits
# below the data modules that run it; `records` (what goes on disk) below everything that writes it,
# `signals` (float64 scores of the target's output) below every score.
LEVELS = [
    ("errors",), ("files",), ("quiet", "commands"), ("records", "signals"), ("evaluation",), ("models",),
    ("data",), ("attacks",), ("tasks",), ("cli",), ("audit", "experiments"), ("api",),
    ("__init__", "__main__"),
]  # fmt: skip
LEVEL = {name: i for i, names in enumerate(LEVELS) for name in names}


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def part(path: Path) -> str:
    """The top-level part of mint a file belongs to (`records`, `cli`, `__init__`, ...)."""
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def test_no_module_is_longer_than_300_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in modules() if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}


def test_no_function_is_longer_than_60_lines():
    long = {
        f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name}": node.end_lineno - node.lineno + 1
        for p in modules()
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    }
    assert long == {}


def test_every_import_points_down_the_pipeline():
    upward = []
    for path in modules():
        here = part(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("mint.") and LEVEL[name.split(".")[1]] > LEVEL[here]:
                    upward.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert upward == []
    assert set(LEVEL) >= {part(p) for p in modules()}  # a new part of mint must be given its level
