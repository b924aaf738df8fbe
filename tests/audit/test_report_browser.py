"""The HTML report escapes whatever the audited folder's file names hold, and a browser shows it sensibly."""

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
import torch
from PIL import Image

from mint.audit.report import histogram_figure, verdict, write_html
from mint.evaluation.roc_plot import plt

# File names an attacker controls: markup, attribute breakouts, a spreadsheet formula, non-ASCII.
HOSTILE = [
    "<img src=x onerror=alert(1)>.png",
    '"><script>alert(1)</script>',
    "photo_日本語_ünïcødé_🙂.jpg",
    '=HYPERLINK("http://evil")',
    "' onmouseover='alert(2)",
    "</code></li></ul><a href=https://evil.example/>click</a>",
]
VERDICT_START = "Strong evidence that images of this set were used to train the model"


def hostile_summary() -> dict:
    """A summary shaped like the one `mint.audit.command._write_report` builds, full of hostile text."""
    skipped = [(f"/photos/{name}", f"cannot be decoded: {name}") for name in HOSTILE]
    skipped += [(f"/photos/junk_{i}.bin", "not an image file (.png, .jpg)") for i in range(205)]
    return {
        "verdict": verdict(2e-5, 120),
        "p_value": 2e-5,
        "effect_size_auroc_vs_nonmembers": 0.71,
        "z": 4.1,
        "member_fraction": {
            "fraction": 0.42,
            "ci_low": 0.3,
            "ci_high": 0.55,
            "raw": [0.42, 0.3, 0.55],
            "consistent_with_none": False,
        },
        "n_audited": 120,
        "n_skipped": len(skipped),
        "skipped": skipped,
        "conversions": {"RGBA converted to RGB": 3, "<b>resized</b> to 32x32": 7},
        "labels": "predicted",
        "label_source": "unlabelled folder <i>" + HOSTILE[0],
        "calibration": {"n_members": 500, "n_nonmembers": 500, "detector_auroc_members_vs_nonmembers": 0.83},
        "audited_score_median": 0.4,
        "detector": {
            "checkpoint": "/ckpt/" + HOSTILE[1],
            "sha256": "a" * 64,
            "layers": ["layer7", HOSTILE[0]],
            "class_conditioning": "embedding",
            "data": None,
        },
        "target": {
            "sha256": "b" * 64,
            "path": "/targets/" + HOSTILE[5],
            "arch": "paper_cnn",
            "kind": "mint checkpoint",
            "preprocessing": {"resize": HOSTILE[2], "mean": [0.5] * 3, "std": [0.25] * 3},
            "source": {"name": HOSTILE[1], "url": "see " + HOSTILE[3]},
        },
        "input": "/photos/" + HOSTILE[4],
        "command": "mint audit --images '/photos/" + HOSTILE[1] + "' --output out",
        "date": "2025-01-01T00:00:00+00:00",
        "device": "cpu",
    }


@pytest.fixture
def report(tmp_path):
    """The hostile summary's report.html and its raw text."""
    gen = torch.Generator().manual_seed(0)
    figure = histogram_figure(
        torch.randn(120, generator=gen) + 0.5,
        torch.randn(500, generator=gen) + 1,
        torch.randn(500, generator=gen),
    )
    path = tmp_path / "report" / "report.html"
    try:
        write_html(path, hostile_summary(), figure)
    finally:
        plt.close(figure)
    return path, path.read_text(encoding="utf-8")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text as a browser would show it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def test_hostile_names_appear_only_escaped(report):
    _, page = report
    tags = parse(page)
    names = {tag for tag, _ in tags.tags}
    assert names <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "tr", "th",
                     "td", "ul", "li", "code", "img"}, names  # fmt: skip
    assert "<script" not in page.lower() and "<a " not in page.lower() and "<b>" not in page
    # Escaped text holds no < or >, so these are all the page's tags (the names' ` onerror=` is text).
    markup = " ".join(re.findall(r"<[^<>]*>", page))
    assert not re.search(r"\son\w+\s*=", markup, re.IGNORECASE), "an event-handler attribute"
    assert all(not k.startswith("on") for _, attrs in tags.tags for k in attrs)
    imgs = [attrs for tag, attrs in tags.tags if tag == "img"]
    assert len(imgs) == 1 and imgs[0]["src"].startswith("data:image/png;base64,")
    assert page.count("<img") == 1
    # Every reference stays inside the page: data: or a fragment.
    refs = re.findall(r"""\s(?:src|href|action|srcset|poster|data)\s*=\s*["']?([^"'\s>]*)""", markup, re.I)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs
    # A URL only ever appears as text: the hostile names' own, shown, never followed.
    assert not re.search(r"https?:|//", re.sub(r"data:[^\"']*", "", markup)), "a URL in the markup"
    urls = set(re.findall(r"https?://[^\s\"'<>&\\]*", page))
    assert urls == {"http://evil", "https://evil.example/"}, urls
    csp = [a for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]
    # The text a reader sees holds every name verbatim, and the summary's content is all there.
    text = "".join(tags.text)
    for name in HOSTILE:
        assert f"/photos/{name}: cannot be decoded: {name}" in text
    assert VERDICT_START in text and "(p = 2e-05, n = 120)" in text
    assert "42% [30%, 55%] (raw estimate 0.42 [0.30, 0.55])" in text
    assert "RGBA converted to RGB: 3" in text and "<b>resized</b> to 32x32: 7" in text
    assert "Skipped (211):" in text and "... and 11 more (see summary.json)" in text
    assert text.count("not an image file") == 194  # the first 200 skipped files are listed
    assert "a" * 64 in text and "b" * 64 in text and "paper_cnn (/targets/" in text
    assert "layer7, " + HOSTILE[0] in text and "predicted class was fed" in text


def chromium(*args, tmp_path, timeout=60):
    """Run headless Chromium offline (every host name resolves to nothing) with a fresh profile."""
    cmd = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", '--host-resolver-rules=MAP * ~NOTFOUND', *args,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


@pytest.mark.browser
def test_browser_shows_the_report_as_text_and_draws_it(report, tmp_path):
    if shutil.which("chromium") is None:
        pytest.skip("headless Chromium (`chromium`) is not on PATH")
    path, _ = report
    dom = chromium("--dump-dom", path.as_uri(), tmp_path=tmp_path).stdout
    assert VERDICT_START in dom
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script" not in dom.lower() and "<a " not in dom.lower()
    assert "photo_日本語_ünïcødé_🙂.jpg" in dom  # decoded as UTF-8
    tags = parse(dom)
    assert [t for t, _ in tags.tags].count("img") == 1
    assert all(not k.startswith("on") for _, attrs in tags.tags for k in attrs)

    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,2000", path.as_uri(), tmp_path=tmp_path)
    assert shot.exists()
    with Image.open(shot) as im:
        assert im.size == (1200, 2000)
        lo, hi = im.convert("L").getextrema()
        colors = im.convert("RGB").getcolors(maxcolors=1 << 16)
    assert hi - lo > 100, "the screenshot is blank"
    assert colors is None or len(colors) > 16, "the screenshot shows no text or figure"
