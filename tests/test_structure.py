"""The shape of the package: short modules and functions, imports in one direction only."""

import ast
import inspect
import re
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


def option_rows(section: str) -> set[str]:
    """The options named in the first column of a section's table in docs/options.md."""
    rows: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            rows |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return rows


def options_of(cls: type) -> set[str]:
    """A class's `__init__` options, with its parent's where it passes them on (`**kwargs`)."""
    params = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return params - {"kwargs"} | (options_of(cls.__mro__[1]) if "kwargs" in params else set())


def test_every_option_has_its_reason_in_docs_options():
    """An option of a module or data module is kept for a reason, written down (docs/options.md)."""
    from mint.data import DetectorDataModule, TargetDataModule
    from mint.data.reference_datamodule import ReferenceDataModule
    from mint.records.removed import REMOVED_OPTIONS
    from mint.tasks import DetectorModule, TargetModule

    text = (PACKAGE.parent / "docs" / "options.md").read_text()
    sections = {s.split("\n", 1)[0]: s for s in text.split("\n## ")[1:]}  # heading -> its text
    removed = option_rows(sections["Removed"])
    assert removed == set(REMOVED_OPTIONS)
    for cls in (DetectorModule, DetectorDataModule, TargetModule, TargetDataModule, ReferenceDataModule):
        section = next(s for heading, s in sections.items() if cls.__name__ in heading)
        options = options_of(cls)
        assert not removed & options, cls.__name__
        assert options - option_rows(section) == set(), cls.__name__
        shared = options_of(ReferenceDataModule) if cls is TargetDataModule else options  # one section
        assert option_rows(section) - shared == set(), cls.__name__
