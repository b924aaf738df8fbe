"""Run folders and result tables shared by the multi-run commands (`quickstart`, `sweep`, `study`)."""

from __future__ import annotations

import re
from pathlib import Path

from mint.errors import MintError
from mint.files import write_atomic
from mint.records.report import ScorerReport, TestReport, target_label


def new_run_dir(output: str | Path, command: str = "mint") -> Path:
    """Create `<output>/run_N` with the next free N; fail before any training if it is not writable."""
    output = Path(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        taken = [int(m.group(1)) for p in output.iterdir() if (m := re.fullmatch(r"run_(\d+)", p.name))]
        run = output / f"run_{max(taken, default=-1) + 1}"
        run.mkdir()
        probe = run / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise MintError(f"{command}: cannot write to the output folder {str(output)!r}: {err}") from err
    return run


def fit_and_test(args: list[str], save_dir: Path, name: str, version: str) -> tuple[object, TestReport]:
    """`fit` then `test` (best checkpoint) one LightningCLI config; return the fit CLI and test report.

    Both runs are logged under `save_dir/name/` (`version` and `version-test`), so TensorBoard shows
    the runs of one sweep or study side by side.
    """
    from mint.cli import main as cli_main  # the CLI imports every module: import it only when running

    log = [f"--trainer.logger.init_args.save_dir={save_dir}", f"--trainer.logger.init_args.name={name}"]
    fit = cli_main(["fit", *args, *log, f"--trainer.logger.init_args.version={version}"])
    best = fit.trainer.checkpoint_callback.best_model_path
    test = cli_main(
        ["test", *args, *log, f"--trainer.logger.init_args.version={version}-test", f"--ckpt_path={best}"]
    )
    return fit, TestReport.read(test.trainer.log_dir)


def fmt(value) -> str:
    """Table cell: floats with 3 decimals, NaN as `n/r` (a level the test set cannot resolve), None as -."""
    if isinstance(value, float):
        return "n/r" if value != value else f"{value:.3f}"
    return "-" if value is None else str(value)


def write_tables(run: Path, stem: str, rows: list[dict], header: str) -> str:
    """Write `<stem>.csv` and `<stem>.md` (with `header` above the table); return the markdown."""
    cols = list(rows[0])
    csv = [",".join(cols)] + [",".join(f'"{r[c]}"' for c in cols) for r in rows]
    write_atomic(run / f"{stem}.csv", lambda t: t.write_text("\n".join(csv) + "\n"))
    md = "\n".join([
        header, "", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols),
        *("| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows),
    ])  # fmt: skip
    write_atomic(run / f"{stem}.md", lambda t: t.write_text(md + "\n"))
    return md


def finish(fig, path: Path, md: str, command: str) -> None:
    """Save the command's figure to `path`, print its table and where everything went."""
    from mint.evaluation.roc_plot import plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(md)
    print(f"{command}: tables and plot in {path.parent}")


def scorer_row(r: ScorerReport) -> dict:
    """The columns every table shows for one scorer's test report."""
    lo, hi = r.auroc_ci95
    return {
        "auroc": r.auroc,
        "auroc_ci95": f"[{lo:.3f}, {hi:.3f}]",
        "balanced_acc": r.balanced_acc,
        "tpr@1%fpr": r.tpr_at_1pct_fpr,
        "tpr@0.1%fpr": r.tpr_at_01pct_fpr,
    }


def interval(cell: str) -> tuple[float, float]:
    """(low, high) of a table's `[0.812, 0.843]` cell."""
    low, high = (float(v) for v in cell.strip("[]").split(","))
    return low, high


def error_bars(values: list[float], cells: list[str]) -> list[list[float]]:
    """Matplotlib's `yerr` (distances below and above each value) from interval cells."""
    bounds = [interval(c) for c in cells]
    return [[v - lo for v, (lo, _) in zip(values, bounds, strict=True)],
            [hi - v for v, (_, hi) in zip(values, bounds, strict=True)]]  # fmt: skip


def target_name(report: TestReport) -> str:
    """The target a run audited, for a figure's title: its architecture (or kind) and its file."""
    return target_label(report.raw.get("target") or {})


def detector_reads(report: TestReport) -> str:
    """What a run's detector read: its layers, and the output features when it read them."""
    read = [*report.raw.get("layers", []), *(["output"] if report.raw.get("output_features") else [])]
    return ", ".join(read) or "nothing"
