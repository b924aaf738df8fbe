"""The audit's verdict in words, its score histogram and its self-contained HTML report.

The report is rendered from the Jinja2 template `report.html.j2` beside this module, with every value
escaped: the summary holds file names and paths from the audited folder, which anyone may have named.
"""

from __future__ import annotations

import base64
import functools
import io
import json
from importlib import resources
from pathlib import Path

import jinja2
import torch
from torch import Tensor

from mint.evaluation.roc_plot import plt
from mint.files import write_atomic

LEVELS = ((1e-3, "Strong evidence"), (1e-2, "Evidence"), (5e-2, "Weak evidence"))


def auroc_text(calibration: dict) -> str:
    """The calibration AUROC and its interval ("AUROC 0.555 [0.470, 0.640], 95% DeLong interval")."""
    text = f"AUROC {calibration['detector_auroc_members_vs_nonmembers']:.3f}"
    if "detector_auroc_ci" in calibration:  # (a summary of an older mint: no interval)
        lo, hi = calibration["detector_auroc_ci"]
        level, method = (calibration[f"detector_auroc_ci_{k}"] for k in ("level", "method"))
        text += f" [{lo:.3f}, {hi:.3f}], {100 * level:.0f}% {method} interval"
    return text


def verdict(p_value: float, n: int, calibration: dict | None = None) -> str:
    """The set-level conclusion in plain words.

    Args:
        p_value: the one-sided Mann-Whitney p-value of the audited set vs the known non-members.
        n: the number of images audited.
        calibration: the summary's `calibration` record; when its `detector_separates` is false (the
            calibration AUROC's interval reaches 0.5), the audit concludes nothing, whatever `p_value`.
    """
    if calibration is not None and not calibration.get("detector_separates", True):
        known = f"{calibration['n_members']} + {calibration['n_nonmembers']}"
        return (
            "Cannot conclude: the detector does not separate known members from non-members better than "
            f"chance ({auroc_text(calibration)} on {known} calibration images), so this audit says nothing "
            "about whether the set was used to train the model, whatever its p-value "
            f"(p = {p_value:.2g}, n = {n}). Train a detector that separates them (more epochs, other "
            "layers, more known images) and audit again."
        )
    for level, words in LEVELS:
        if p_value < level:
            return (
                f"{words} that images of this set were used to train the model (p = {p_value:.2g}, n = {n})."
            )
    few = " With so few images the test has little power." if n < 30 else ""
    return (
        f"No evidence that this set was used to train the model (p = {p_value:.2g}, n = {n}). "
        f"This does not prove it was not used: the detector may not see weak memorization.{few}"
    )


def caveats(summary: dict) -> list[str]:
    """What the verdict rests on, for a reader who has to act on it."""
    cal = summary["calibration"]
    items = [
        f"The audited scores are compared with {cal['n_nonmembers']} images known not to be in the training "
        "set, drawn from the same data as the training set. Images from another distribution (another "
        "camera, compression, resizing, domain) can score differently for that reason alone, in either "
        'direction: a small p-value means "scores higher than unseen images like the training data".',
        f"The detector separates known members from non-members with {auroc_text(cal)} on the "
        "calibration images (0.5 = chance). The weaker it is, the more images an audit needs, and the "
        "wider the fraction's interval; an interval reaching 0.5 leaves the audit without a conclusion.",
        "The estimated fraction assumes that the audited members and non-members score like the calibration "
        "members and non-members. Clipped to [0, 1] it is biased away from 0 and 1 (a set of non-members "
        "reads a few percent), so the raw estimate is shown beside it: an interval reaching 0 is "
        "consistent with none of the set having been used.",
        "Near-copies of training images (other crops, frames of the same scene) count as members.",
    ]
    accuracy = cal.get("target_accuracy")
    if accuracy and accuracy.get("at_chance"):
        pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        items.append(
            f"The target classifies the calibration images at chance accuracy ({pct(accuracy['members'])} of "
            f"the known members, {pct(accuracy['nonmembers'])} of the non-members; chance "
            f"{pct(accuracy['chance'])}): it learned little, so there is little memorization to detect, and "
            "its scores say little either way. Check that the target's weights and preprocessing are right."
        )
    if summary["labels"] == "predicted":
        items.append(
            "The images carried no class labels, so the target's predicted class was fed to the "
            "detector (the calibration scores were made the same way)."
        )
    if summary["n_audited"] < 30:
        items.append(f"Only {summary['n_audited']} images were audited: the test has little power.")
    return items


def histogram_figure(audited: Tensor, members: Tensor, nonmembers: Tensor):
    """Score histograms (densities) of the audited set, known members and known non-members."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    everything = torch.cat([audited, members, nonmembers]).float()
    lo, hi = torch.quantile(everything, torch.tensor([0.005, 0.995])).tolist()
    bins = torch.linspace(lo, hi if hi > lo else lo + 1, 41).tolist()
    style = {"bins": bins, "density": True, "histtype": "step", "linewidth": 1.6}
    ax.hist(
        nonmembers.clamp(lo, hi).numpy(),
        label=f"known non-members ({len(nonmembers)})",
        color="tab:blue",
        **style,
    )
    ax.hist(
        members.clamp(lo, hi).numpy(), label=f"known members ({len(members)})", color="tab:orange", **style
    )
    ax.hist(audited.clamp(lo, hi).numpy(), label=f"audited set ({len(audited)})", color="black", **style)
    ax.set(xlabel="MINT score (logit; higher = more member-like)", ylabel="density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def share_text(frac: dict) -> str:
    """The estimated share in words: clipped to [0, 1], the raw estimate beside it, and what it allows."""
    if frac.get("not_reported"):
        return f"n/a: {frac['not_reported']}"
    pct = lambda v: "n/a" if v != v else f"{100 * v:.0f}%"  # noqa: E731
    point, lo, hi = frac["raw"]
    text = f"{pct(frac['fraction'])} [{pct(frac['ci_low'])}, {pct(frac['ci_high'])}]"
    if lo != lo:
        return text
    text += f" (raw estimate {point:.2f} [{lo:.2f}, {hi:.2f}]"
    text += "; beyond 1 = scores above the known members')" if hi > 1 else ")"
    if frac.get("consistent_with_none"):
        text += "; consistent with none of the set having been used"
    return text


# The skipped files listed in the page; summary.json has them all.
MAX_SKIPPED_SHOWN = 200


def _png_base64(figure) -> str:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode()


@functools.cache
def _template() -> jinja2.Template:
    """The report's template, shipped as package data beside this module."""
    # Autoescaping everything keeps file names and paths from the audited folder (which anyone may
    # have named) text, never markup; StrictUndefined turns a key missing from the context into an
    # error instead of a silently empty cell.
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string((resources.files("mint.audit") / "report.html.j2").read_text(encoding="utf-8"))


def render_html(summary: dict, figure) -> str:
    """The report page for `summary` (as built by `mint audit`) with `figure` embedded as a PNG.

    Args:
        summary: The audit's summary, the dict written to summary.json.
        figure: The matplotlib figure of the score histograms (see `histogram_figure`).

    Returns:
        A self-contained HTML page: no scripts, nothing loaded from elsewhere.
    """
    d, c = summary["detector"], summary["target"]
    numbers = [
        ("p-value (one-sided Mann-Whitney U, audited > known non-members)", f"{summary['p_value']:.3g}"),
        ("effect size: P(audited score > non-member score)",
         f"{summary['effect_size_auroc_vs_nonmembers']:.3f}"),
        ("estimated share of the set used in training [95% CI]",
         share_text(summary["member_fraction"])),
        ("detector on its calibration images: known members vs non-members [CI]",
         auroc_text(summary["calibration"])),
        ("images audited", summary["n_audited"]),
        ("files skipped", summary["n_skipped"]),
        ("class fed to the detector", summary["labels"]),
    ]  # fmt: skip
    models = [
        ("detector checkpoint", d["checkpoint"]), ("detector sha256", d["sha256"]),
        ("layers", ", ".join(d["layers"])), ("class conditioning", d["class_conditioning"]),
        ("target", f"{c['arch']} ({c['path']})" if str(c["arch"]).startswith(c["kind"])
         else f"{c['kind']}: {c['arch']} ({c['path']})"), ("target sha256", c["sha256"]),
        ("target preprocessing", preprocessing_text(c["preprocessing"])),
        ("target's training data", json.dumps(c["source"])),
    ]  # fmt: skip
    skipped = summary["skipped"]
    # Every value goes in as str: an object with an __html__ method would otherwise bypass escaping.
    text = lambda rows: [(str(k), str(v)) for k, v in rows]  # noqa: E731
    return _template().render(
        verdict=str(summary["verdict"]),
        conclusive=summary["calibration"].get("detector_separates", True),
        numbers=text(numbers),
        histogram_png=_png_base64(figure),
        caveats=[str(x) for x in caveats(summary)],
        input=str(summary["input"]),
        label_source=str(summary["label_source"]),
        conversions=text(summary["conversions"].items()),
        n_skipped=str(summary["n_skipped"]),
        skipped=text(skipped[:MAX_SKIPPED_SHOWN]),
        more_skipped=max(len(skipped) - MAX_SKIPPED_SHOWN, 0),
        models=text(models),
        command=str(summary["command"]),
        date=str(summary["date"]),
        device=str(summary["device"]),
    )


def preprocessing_text(p: dict) -> str:
    """The preprocessing record in one line: size, crop, mean, std, channel order."""
    mean, std = (", ".join(f"{v:.4g}" for v in p[k]) for k in ("mean", "std"))
    order = p.get("channel_order", "RGB")
    return f"{p['resize']}; crop {p.get('crop', 'none')}; mean ({mean}); std ({std}); {order}"


def write_html(path: Path, summary: dict, figure) -> None:
    """Write the one-file report: verdict, numbers, histogram, caveats, inputs, models and command.

    Args:
        path: Where to write the page (atomically).
        summary: The audit's summary, the dict written to summary.json.
        figure: The matplotlib figure of the score histograms.
    """
    page = render_html(summary, figure)
    # UTF-8 whatever the locale: the page declares it, and file names need not be ASCII.
    # File names that are not UTF-8 (surrogate escapes) are shown as \x.. escapes, not an error.
    write_atomic(path, lambda tmp: tmp.write_text(page, encoding="utf-8", errors="backslashreplace"))
