"""The audit's verdict in words, its score histogram and its self-contained HTML report."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import torch
from torch import Tensor

from mint.evaluation.roc_plot import plt
from mint.files import write_atomic

LEVELS = ((1e-3, "Strong evidence"), (1e-2, "Evidence"), (5e-2, "Weak evidence"))


def verdict(p_value: float, n: int) -> str:
    """The set-level conclusion in plain words."""
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
        f"The detector separates known members from non-members with AUROC "
        f"{cal['detector_auroc_members_vs_nonmembers']:.3f} on the calibration images (0.5 = chance). The "
        "weaker it is, the more images an audit needs, and the wider the fraction's interval.",
        "The estimated fraction assumes that the audited members and non-members score like the calibration "
        "members and non-members. Clipped to [0, 1] it is biased away from 0 and 1 (a set of non-members "
        "reads a few percent), so the raw estimate is shown beside it: an interval reaching 0 is "
        "consistent with none of the set having been used.",
        "Near-copies of training images (other crops, frames of the same scene) count as members.",
    ]
    if summary["labels"] == "predicted":
        items.append(
            "The images carried no class labels, so the target's predicted class was fed to the "
            "class-conditioned detector (the calibration scores were made the same way)."
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


def _png_base64(figure) -> str:
    buf = io.BytesIO()
    figure.savefig(buf, format="png", dpi=110)
    return base64.b64encode(buf.getvalue()).decode()


def write_html(path: Path, summary: dict, figure) -> None:
    """A one-file report: verdict, numbers, histogram, caveats, inputs, models and command."""
    e = html.escape
    rows = [
        ("p-value (one-sided Mann-Whitney U, audited > known non-members)", f"{summary['p_value']:.3g}"),
        ("effect size: P(audited score > non-member score)",
         f"{summary['effect_size_auroc_vs_nonmembers']:.3f}"),
        ("estimated share of the set used in training [95% CI]",
         share_text(summary["member_fraction"])),
        ("images audited", summary["n_audited"]),
        ("files skipped", summary["n_skipped"]),
        ("class fed to the detector", summary["labels"]),
    ]  # fmt: skip
    conv = "".join(f"<li>{e(k)}: {v}</li>" for k, v in summary["conversions"].items()) or "<li>none</li>"
    skipped = "".join(f"<li><code>{e(n)}</code>: {e(r)}</li>" for n, r in summary["skipped"][:200])
    more = len(summary["skipped"]) - 200
    skipped += f"<li>... and {more} more (see summary.json)</li>" if more > 0 else ""
    d, c = summary["detector"], summary["target"]
    models = [
        ("detector checkpoint", d["checkpoint"]), ("detector sha256", d["sha256"]),
        ("layers", ", ".join(d["layers"])), ("class conditioning", d["class_conditioning"]),
        ("target", f"{c['arch']} ({c['path']})"), ("target sha256", c["sha256"]),
        ("target's training data", json.dumps(c["source"])),
    ]  # fmt: skip
    table = lambda rs: "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in rs)  # noqa: E731
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mint audit report</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}}
th{{text-align:left;padding-right:1em;font-weight:normal;color:#444}}td{{font-family:monospace}}
.verdict{{font-size:1.3em;padding:.6em;border-left:6px solid #333;background:#f4f4f4}}</style></head><body>
<h1>Membership audit</h1>
<p class="verdict">{e(summary["verdict"])}</p>
<table>{table(rows)}</table>
<h2>Scores</h2>
<p>The detector's score of every audited image (black) beside its scores of images known to be members
(orange) and known not to be (blue), held out when the detector was trained. A set used in training
sits to the right of the blue curve.</p>
<img alt="score histograms" src="data:image/png;base64,{_png_base64(figure)}">
<h2>Caveats</h2><ul>{"".join(f"<li>{e(x)}</li>" for x in caveats(summary))}</ul>
<h2>Input</h2><p><code>{e(summary["input"])}</code> ({e(summary["label_source"])})</p>
<p>Converted on loading:</p><ul>{conv}</ul>
<p>Skipped ({summary["n_skipped"]}):</p><ul>{skipped or "<li>none</li>"}</ul>
<h2>Models</h2><table>{table(models)}</table>
<h2>Reproduce</h2><p><code>{e(summary["command"])}</code></p>
<p>{e(summary["date"])}, device {e(summary["device"])}. Per-image scores: <code>scores.csv</code>;
all numbers: <code>summary.json</code>.</p>
</body></html>
"""
    write_atomic(path, lambda tmp: tmp.write_text(page))
