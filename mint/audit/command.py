r"""`mint audit`: was this set of images used to train this model?

    mint audit --ckpt lightning_logs/mint_layer7/latest/checkpoints/best.ckpt --images my_photos/ \
        --output audit_my_photos

The detector checkpoint carries its frozen target and the detector's scores of known members and
non-members held out for calibration (`data.calibration_size`). Every audited image is scored
(streamed in batches, resized and normalized as the target's training data were); the set's
scores are compared with the calibration non-members' by a one-sided Mann-Whitney U test, and the
share of the set that was in training is estimated with a confidence interval
(`mint.audit.statistics`). A detector that does not separate its known members from non-members
(DeLong's interval of its calibration AUROC reaches 0.5) gives no verdict and no share, whatever
the p-value.
Written to `--output`: `scores.csv` (one row per image), `summary.json`, `histogram.png` and a
self-contained `report.html`.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch
from tqdm import tqdm

from mint.audit import output as report_folder
from mint.audit.detector import AuditError, TrainedDetector, load_detector, reads_label
from mint.audit.inputs import AuditInputs, list_inputs
from mint.audit.report import histogram_figure, verdict, write_html
from mint.audit.statistics import (
    calibration_summary,
    mann_whitney_greater,
    member_share,
)
from mint.commands import command_parser
from mint.data.images import to_tensor
from mint.data.integrity import image_digests
from mint.errors import check_count, check_finite
from mint.evaluation.roc_plot import plt
from mint.models import LOGITS

# Why audited scores can be NaN or infinite (a NaN target activation is refused before this).
NAN_SCORES_HINT = (
    "check the target's preprocessing (std must be > 0), the images (NaN pixels) and the detector's "
    "weights (NaN after a diverged training); mint draws no verdict from NaN scores"
)


def _fail(message: str):
    raise AuditError(message)


@torch.no_grad()
def score_images(
    trained: TrainedDetector, inputs: AuditInputs, labels: str, batch_size: int, progress: bool, sink
) -> torch.Tensor:
    """Score every decodable image; write one CSV row each to `sink`; return the scores (float64)."""
    scores, seen_skips, learned = [], len(inputs.skipped), []
    bar = tqdm(total=len(inputs.items), unit="img", desc="mint audit", disable=not progress, file=sys.stderr)
    for batch in inputs.batches(batch_size):
        if trained.seen is not None:  # images the detector learned from are no evidence
            digests = image_digests(batch.images)
            learned += [
                n for n, d in zip(batch.names, digests, strict=True) if bytes(d.tolist()) in trained.seen
            ]
        device = next(trained.target.buffers()).device
        given = None if labels == "predicted" else torch.from_numpy(batch.labels).to(device)
        acts = trained.target(
            to_tensor(torch.from_numpy(batch.images).to(device)), given
        )  # (gradients: of `given`)
        predicted = acts[LOGITS].argmax(1)
        used = predicted if given is None else given
        s = trained.detector(acts, used).double().cpu()
        first = batch.names[0] if batch.names else ""
        check_finite(f"the detector's scores of {len(s)} audited images (from {first})", s, NAN_SCORES_HINT)
        scores.append(s)
        for name, lab, pred, used_lab, value in zip(
            batch.names, batch.labels.tolist(), predicted.tolist(), used.tolist(), s.tolist(), strict=True
        ):
            given, used_text = (v if v >= 0 else "" for v in (lab, used_lab))
            sink.writerow([_cell(name), given, pred, used_text, f"{value:.8g}", f"{_sigmoid(value):.6f}"])
        bar.update(len(batch.names) + len(inputs.skipped) - seen_skips)  # skipped files count as done
        seen_skips = len(inputs.skipped)
    bar.close()
    if learned:
        _fail(
            f"{len(learned)} of the audited images (e.g. {', '.join(learned[:3])}) are images the detector "
            "itself was trained, validated or calibrated on: their scores reflect the detector's training, "
            "not the target's, and would inflate the evidence. Remove them from the set, or audit with a "
            "detector trained on other known members and non-members."
        )
    if not scores:
        _fail(f"none of the {len(inputs.items)} files of {inputs.path} could be decoded as images")
    return torch.cat(scores)


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v > -700 else 0.0


def _cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ (a formula) gets a quote mark."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def audit_device(device: str) -> torch.device:
    """The torch device of `--device`, refused with a message when it does not exist here."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        _fail(f"--device {device!r} is not a device name; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and (
        not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()
    ):
        _fail(f"--device {device} asks for a GPU this machine does not have "
              f"({torch.cuda.device_count()} found); use --device cpu or auto")  # fmt: skip
    if dev.type not in ("cpu", "cuda"):
        _fail(f"--device {device}: mint audits on cpu or cuda devices")
    return dev


def _json_object(text: str) -> dict:
    """--trust-factory-args: a JSON object (argparse reports a ValueError as an invalid value)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def resolve_labels(labels: str, inputs: AuditInputs, trained: TrainedDetector) -> str:
    """`given` or `predicted`: `auto` is given when every image has a label (or no class is read)."""
    if labels == "given" and not inputs.has_labels:
        _fail(
            f"--labels given, but {inputs.path} has no labels ({inputs.label_note}); use --labels predicted"
        )
    if labels == "auto":
        return "given" if inputs.has_labels or not reads_label(trained) else "predicted"
    return labels


def run_audit(
    ckpt: str,
    images: str,
    output: str,
    overwrite: bool = False,
    labels: str = "auto",
    class_names: list[str] | None = None,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
    command: str | None = None,
    trust_factory: str | None = None,
    trust_factory_args: dict | None = None,
    module: torch.nn.Module | None = None,
) -> dict:
    """Audit a set of images; write the report folder; return the summary.

    `module`: the model of a target given in Python (`mint.audit_model`), given again.
    """
    out = Path(output)
    check_count("--batch-size", batch_size)
    if out.exists() and not overwrite:  # before any work
        _fail(f"the output {str(out)!r} already exists; choose another --output or pass --overwrite")
    dev = audit_device(device)
    trained = load_detector(ckpt, dev, trust_factory, trust_factory_args, module)
    target = trained.target
    inputs = list_inputs(images, target.image_size, target.num_classes, class_names, labels != "predicted")
    labels = resolve_labels(labels, inputs, trained)
    tmp = report_folder.start(out, overwrite)
    try:
        summary = _write_report(tmp, trained, inputs, labels, batch_size, progress, images, command, dev)
        report_folder.finish(tmp, out, overwrite)
    except BaseException:
        report_folder.abandon(tmp)  # no half-written report is left behind
        raise
    for what, count in summary["conversions"].items():
        print(f"mint audit: {count} images: {what}", file=sys.stderr)
    if summary["n_skipped"]:
        print(f"mint audit: {summary['n_skipped']} files skipped (listed in the report)", file=sys.stderr)
    print(f"{summary['verdict']}\nmint audit: report in {out / 'report.html'}")
    return summary


def _write_report(tmp, trained, inputs, labels, batch_size, progress, images, command, dev) -> dict:
    """Score the set and write scores.csv, summary.json, histogram.png and report.html into `tmp`."""
    target = trained.target
    conditioned = reads_label(trained)
    # backslashreplace: a file name that is not UTF-8 is written with \x.. escapes, not an error
    with (tmp / "scores.csv").open("w", newline="", encoding="utf-8", errors="backslashreplace") as f:
        sink = csv.writer(f)
        sink.writerow(["image", "label", "predicted_class", "class_used", "score", "member_probability"])
        scores = score_images(trained, inputs, labels, batch_size, progress, sink)
    cal = trained.calibration
    key = "predicted_label" if labels == "predicted" and conditioned else "true_label"
    members, nonmembers = cal[key][cal["members"] == 1], cal[key][cal["members"] == 0]
    test = mann_whitney_greater(scores, nonmembers)
    calibration = calibration_summary(trained.calibration, trained.target.num_classes, members, nonmembers)
    summary = {
        "verdict": verdict(test["p_value"], len(scores), calibration),
        "p_value": test["p_value"],
        "effect_size_auroc_vs_nonmembers": test["auroc"],
        "z": test["z"],
        "member_fraction": member_share(scores, members, nonmembers, calibration),
        "n_audited": len(scores),
        "n_skipped": len(inputs.skipped),
        "skipped": inputs.skipped,
        "conversions": dict(inputs.conversions),
        "labels": labels if conditioned else "not used (the detector reads no class)",
        "label_source": inputs.label_note,
        "calibration": calibration,
        "audited_score_median": float(scores.median()),
        "detector": {
            "checkpoint": trained.path,
            "sha256": trained.sha256,
            "layers": list(trained.target.layers),
            "class_conditioning": trained.hparams["class_conditioning"],
            "output_features": bool(trained.hparams.get("output_features")),
            "data": trained.data.get("sets"),
        },
        "target": target.record() | {"source": target.meta["manifest"].get("source", "known data")},
        "input": str(Path(images).resolve()),
        "command": command or "mint audit (from Python)",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": str(dev),
    }
    (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    figure = histogram_figure(scores, members, nonmembers)
    figure.savefig(tmp / "histogram.png", dpi=110)
    write_html(tmp / "report.html", summary, figure)
    plt.close(figure)
    return summary


def main(argv: list[str] | None = None) -> dict:
    """Command-line entry point of `mint audit`."""
    parser = command_parser("mint audit", __doc__)
    parser.add_argument("--ckpt", required=True, help="detector checkpoint (it carries its target)")
    parser.add_argument("--images", required=True, help="image folder (optionally class subfolders) or .npz")
    parser.add_argument("--output", required=True, help="report folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    parser.add_argument(
        "--labels", choices=["auto", "given", "predicted"], default="auto",
        help="class fed to a detector that reads one (class conditioning, output or gradient features): "
        "given (folders / npz labels), predicted by the target, or auto (given when every image has one)",
    )  # fmt: skip
    parser.add_argument("--class-names", help="comma-separated class names in index order (class subfolders)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per batch")
    parser.add_argument("--device", default="auto", help="auto (GPU when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-progress-bar", action="store_true", help="hide the progress bar")
    parser.add_argument(
        "--trust-factory", metavar="PACKAGE.MODULE:FUNCTION",
        help="let the detector's FactoryTarget run this code of yours to rebuild the target",
    )  # fmt: skip
    parser.add_argument(
        "--trust-factory-args", metavar="JSON", type=_json_object, default=None,
        help="the keyword arguments (a JSON object) --trust-factory may be called with; they must "
        "equal the ones the detector records",
    )  # fmt: skip
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.class_names.split(",")] if args.class_names else None
    command = "mint audit " + " ".join(argv if argv is not None else sys.argv[1:])
    return run_audit(
        args.ckpt, args.images, args.output, args.overwrite, args.labels, names,
        args.batch_size, args.device, not args.no_progress_bar, command, args.trust_factory,
        args.trust_factory_args,
    )  # fmt: skip


if __name__ == "__main__":
    main()
