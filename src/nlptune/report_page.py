"""The HTML page of ``nlptune report``: one self-contained file (the figures embedded as
``data:`` URIs, the style inline, no script and nothing fetched), so it still shows when moved
or mailed; each figure also links its PNG file beside it. Everything taken from the run folder
is escaped."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape
from typing import Any

from nlptune.report_dev import DevFigure
from nlptune.report_plots import Image
from nlptune.report_run import RunRecord

STYLE = """
body{margin:0;background:#f6f8fa;color:#1f2328;
  font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 2px}
h2{font-size:19px;margin:30px 0 12px;padding-bottom:4px;border-bottom:1px solid #d0d7de}
.sub{color:#57606a;margin:0 0 18px;word-break:break-all}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:14px 16px}
table{border-collapse:collapse;width:100%}
th,td{padding:5px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{color:#57606a;font-weight:600;white-space:nowrap}
td{word-break:break-word}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.main td{font-weight:700;background:#f0f7ff}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
figure{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px}
figure.wide{grid-column:1/-1}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font-size:13px;color:#57606a;margin-top:8px}
.note{background:#fff8c5;border:1px solid #e6cf7a;border-radius:6px;padding:8px 12px;margin:8px 0}
pre{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 14px;margin:0;
  overflow:auto;font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
a{color:#0969da}
"""


def page(
    record: RunRecord,
    images: Sequence[Image],
    dev: DevFigure,
    main: str | None,
    version: str,
    created: str,
) -> str:
    """The report page for ``record`` with ``images`` (curves first, then the dev figure)."""
    name = escape(record.folder.resolve().name or str(record.folder))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>nlptune report: {name}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>Run report: {name}</h1>",
        f'<p class="sub">{escape(str(record.folder.resolve()))}</p>',
        '<div class="cols">',
        f'<div class="card"><h2 style="margin-top:0">Run</h2>{_identity(record)}</div>',
        f'<div class="card"><h2 style="margin-top:0">Metrics</h2>{_metrics(record, main)}</div>',
        "</div>",
        "<h2>Figures</h2>",
        *[f'<p class="note">{escape(n)}</p>' for n in record.notes],
        _dev_line(dev),
        '<div class="figs">',
        *[_figure(image) for image in images],
        "</div>",
        "<h2>Config</h2>",
        f"<pre>{escape(record.config_text)}</pre>",
        f'<p class="sub" style="margin-top:18px">Written by nlptune {escape(version)} '
        f"on {escape(created)}.</p>",
        "</main></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _figure(image: Image) -> str:
    data = base64.b64encode(image.png).decode("ascii")
    wide = ' class="wide"' if image.wide else ""
    title, file = escape(image.title), escape(image.file)
    caption = f'{title} &middot; <a href="{file}">{file}</a>'
    if image.caption:
        caption += f"<br>{escape(image.caption)}"
    return (
        f'<figure{wide}><img src="data:image/png;base64,{data}" alt="{title}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _dev_line(dev: DevFigure) -> str:
    if not dev.kind:
        return f'<p class="note">{escape(dev.note)}</p>' if dev.note else ""
    return f"<p>Dev-set figure: predicted {dev.examples} examples of {escape(dev.data)}.</p>"


def _identity(record: RunRecord) -> str:
    config, metrics, meta = record.config, record.metrics, record.meta
    task = dict(config.get("task") or {})
    backbone = dict(config.get("backbone") or {})
    strategy = dict(config.get("strategy") or {})
    labels = record.labels.get("labels")
    kind = str(task.get("type", "?"))
    if record.labels.get("problem"):
        kind += f" ({record.labels['problem']})"
    if isinstance(labels, list) and labels:
        kind += f", {len(labels)} labels"
    params = _mapping(metrics.get("parameters"))
    versions = _mapping(meta.get("versions"))
    rows = [
        ("task", kind),
        ("model", f"{backbone.get('path', '?')} ({backbone.get('type', '?')})"),
        ("strategy", str(strategy.get("type", "?"))),
        ("steps", _steps(metrics)),
        ("wall time", _seconds(metrics.get("wall_seconds"))),
        ("training", _training(metrics)),
        ("parameters", _parameters(params)),
        ("seed", str(meta.get("seed", config.get("seed", "?")))),
        ("created", str(meta.get("created", "?"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)),
        ("git revision", str(meta.get("git_revision") or "-")),
        ("data", _data(meta)),
    ]
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows if v)
    return f"<table>{body}</table>"


def _steps(metrics: dict[str, Any]) -> str:
    text = f"{metrics.get('steps', '?')} ({metrics.get('epochs_done', '?')} epochs)"
    if metrics.get("best_step") is not None:
        text += f", best checkpoint at step {metrics['best_step']}"
    return text + (", stopped early" if metrics.get("stopped_early") else "")


def _training(metrics: dict[str, Any]) -> str:
    seconds, rate = metrics.get("train_seconds"), metrics.get("train_examples_per_s")
    text = _seconds(seconds)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool):
        return text
    return f"{text}, {rate:,.1f} examples/s"


def _parameters(params: dict[str, Any]) -> str:
    if not params:
        return ""
    trainable, total = params.get("trainable"), params.get("total")
    if isinstance(trainable, int) and isinstance(total, int) and total:
        return f"{trainable:,} trainable of {total:,} ({100 * trainable / total:.1f}%)"
    return f"{trainable} trainable of {total}"


def _data(meta: dict[str, Any]) -> str:
    data = _mapping(meta.get("data"))
    out = []
    for split, entry in data.items():
        if isinstance(entry, dict):
            digest = str(entry.get("sha256") or "")[:12]
            out.append(f"{split}: {entry.get('path')}" + (f" (sha256 {digest}…)" if digest else ""))
    return "; ".join(out)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "?"
    if value < 120:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"


def _metrics(record: RunRecord, main: str | None) -> str:
    """Dev (and test) metrics of the best checkpoint, the main one first and marked."""
    splits = [s for s in ("dev", "test") if isinstance(record.metrics.get(s), dict)]
    if not splits:
        return "<p>The run has no dev or test metrics (no dev set).</p>"
    names: list[str] = []
    for split in splits:
        names += [k for k in record.metrics[split] if k not in names]
    if main in names:
        names.remove(main)
        names.insert(0, main)
    head = "".join(f'<th class="num">{escape(s)}</th>' for s in splits)
    rows = []
    for key in names:
        cells = "".join(
            f'<td class="num">{escape(_number(record.metrics[s].get(key)))}</td>' for s in splits
        )
        mark = ' class="main"' if key == main else ""
        label = f"{escape(key)} (main)" if key == main else escape(key)
        rows.append(f"<tr{mark}><td>{label}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or (math.isfinite(value) and value.is_integer() and abs(value) > 1):
        return f"{int(value):,}"
    return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e5 else f"{value:.4g}"
