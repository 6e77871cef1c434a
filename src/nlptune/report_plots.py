"""The figures of ``nlptune report`` as PNG bytes, drawn with matplotlib's object API on the
Agg canvas (no pyplot: the caller's backend and global state are left alone). matplotlib is
imported only here, when a report is drawn."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from nlptune.report_dev import DevFigure
from nlptune.report_run import Curves

DPI = 100
BLUE, ORANGE, GREY = "#1f77b4", "#ff7f0e", "#8c959f"


@dataclass
class Image:
    """One figure: its file name, a title for the page and the PNG bytes."""

    file: str
    title: str
    png: bytes
    caption: str = ""
    wide: bool = False  # the page gives it the full width (a large confusion matrix)


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _best_line(axes: Any, best_step: int | None) -> None:
    if best_step is not None and best_step >= 0:
        axes.axvline(best_step, color=GREY, linestyle=":", linewidth=1.2, label="best checkpoint")


def _smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average (as TensorBoard's smoothing), skipping non-finite values."""
    out, last = [], None
    for v in values:
        if math.isfinite(v):
            last = v if last is None else weight * last + (1 - weight) * v
        out.append(last if last is not None else math.nan)
    return out


def loss(curves: Curves, best_step: int | None) -> Image:
    """Training loss against steps (smoothed when there are many points); auxiliary head
    losses (``loss_<head>``) as further lines."""
    figure, axes = _figure(6.4, 3.8)
    steps = [r["step"] for r in curves.train]
    values = [r.get("loss", math.nan) for r in curves.train]
    many = len(values) > 30
    axes.plot(steps, values, color=BLUE, alpha=0.35 if many else 1.0, linewidth=1.2, label="loss")
    if many:
        axes.plot(steps, _smooth(values, 0.9), color=BLUE, linewidth=2, label="loss (smoothed)")
    heads = sorted({k for r in curves.train for k in r if k.startswith("loss_")})
    for head in heads:
        shown = [r.get(head, math.nan) for r in curves.train]
        axes.plot(steps, shown, linewidth=1.2, label=_plain(head))
    _best_line(axes, best_step)
    axes.set(xlabel="step", ylabel="loss", title="Training loss")
    _finish(axes)
    return Image("loss.png", "Training loss", _png(figure))


def learning_rate(curves: Curves, best_step: int | None) -> Image:
    figure, axes = _figure(6.4, 3.8)
    steps = [r["step"] for r in curves.train if "lr" in r]
    axes.plot(steps, [r["lr"] for r in curves.train if "lr" in r], color=ORANGE, linewidth=1.6)
    _best_line(axes, best_step)
    axes.set(xlabel="step", ylabel="learning rate", title="Learning rate")
    axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    _finish(axes)
    return Image("lr.png", "Learning rate", _png(figure))


def dev_metric(curves: Curves, name: str, higher: bool, best_step: int | None) -> Image:
    """The dev metric at every evaluation, the best one starred."""
    figure, axes = _figure(6.4, 3.8)
    points = [(r["step"], r[name]) for r in curves.evals if name in r]
    steps, values = [p[0] for p in points], [p[1] for p in points]
    axes.plot(steps, values, color="#2ca02c", marker="o", markersize=4, linewidth=1.6)
    best = [(s, v) for s, v in points if s == best_step]
    if best:
        axes.plot(*best[0], marker="*", markersize=14, color="#d62728", linestyle="none")
        axes.annotate(
            f"best {best[0][1]:.4g}",
            best[0],
            textcoords="offset points",
            xytext=(8, 6 if higher else -14),
            fontsize=9,
        )
    axes.margins(x=0.05, y=0.18)  # room for the best value's label
    better = "higher" if higher else "lower"
    axes.set(xlabel="step", ylabel=_plain(name), title=_plain(f"Dev {name} ({better} is better)"))
    _finish(axes, legend=False)
    return Image("dev_metric.png", f"Dev {name}", _png(figure))


def _finish(axes: Any, legend: bool = True) -> None:
    axes.grid(True, color="#eaeef2")
    axes.set_axisbelow(True)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    if legend and len(axes.get_legend_handles_labels()[0]) > 1:
        axes.legend(fontsize=9, frameon=False)


def dev_image(dev: DevFigure) -> Image:
    """The dev-set figure (:class:`DevFigure`) as drawn for its kind."""
    draw = {"confusion": _confusion, "bars": _bars, "scatter": _scatter}[dev.kind]
    wide = dev.kind == "confusion" and len(dev.labels) > 12
    return Image(dev.file, dev.title, _png(draw(dev)), dev.note, wide)


def _confusion(dev: DevFigure) -> Any:
    """Counts in the cells (up to 20 labels), colour by the share of the gold row."""
    import numpy as np

    matrix = np.asarray(dev.matrix)
    n = len(dev.labels)
    side = min(max(5.0, 0.34 * n + 2.6), 13.0)
    figure, axes = _figure(side + 1.4, side)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    shown = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    figure.colorbar(shown, ax=axes, shrink=0.8, label="share of the gold row")
    ticks = list(range(n))
    names = [_short(x) for x in dev.labels]
    axes.set_xticks(ticks, names, rotation=90 if n > 6 else 0, fontsize=8 if n > 12 else 10)
    axes.set_yticks(ticks, names, fontsize=8 if n > 12 else 10)
    axes.set(xlabel="predicted", ylabel="gold", title=_wrap(dev.title, 60))
    if n <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                colour = "white" if share[i, j] > 0.55 else "#1f2328"
                axes.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=9)
    return figure


def _bars(dev: DevFigure) -> Any:
    n = len(dev.labels)
    figure, axes = _figure(6.4, max(3.8, 0.3 * n + 1.4))
    names = [f"{_short(x)} ({s})" for x, s in zip(dev.labels, dev.support, strict=True)]
    y = list(range(n))
    axes.barh(y, dev.values, color=BLUE, height=0.6 if n > 3 else 0.4)
    axes.set_yticks(y, names, fontsize=9)
    axes.invert_yaxis()
    for yi, value in zip(y, dev.values, strict=True):
        axes.text(value + 0.01, yi, f"{value:.3f}", va="center", fontsize=9)
    axes.set_xlim(0, 1.12)
    axes.set(xlabel="F1 (gold count in brackets)", title=_wrap(dev.title, 70))
    _finish(axes, legend=False)
    return figure


def _scatter(dev: DevFigure) -> Any:
    import numpy as np

    figure, axes = _figure(5.6, 5.2)
    gold, pred = np.asarray(dev.gold, dtype=float), np.asarray(dev.pred, dtype=float)
    axes.scatter(gold, pred, s=12, alpha=0.6, color=BLUE, edgecolors="none")
    both = np.concatenate([gold, pred])
    low, high = (float(both.min()), float(both.max())) if both.size else (0.0, 1.0)
    axes.plot([low, high], [low, high], color=GREY, linestyle="--", linewidth=1)
    title = f"{dev.title} ({len(gold)} examples)"
    if len(gold) > 1 and gold.std() > 0 and pred.std() > 0:
        title += f", Pearson {float(np.corrcoef(gold, pred)[0, 1]):.3f}"
    axes.set(xlabel="gold", ylabel="predicted", title=_wrap(title, 50))
    _finish(axes, legend=False)
    return figure


def _short(name: str, size: int = 24) -> str:
    return _plain(name if len(name) <= size else name[: size - 1] + "…")


def _plain(text: str) -> str:
    """``text`` as drawn literally (a ``$`` would start matplotlib's math mode)."""
    return text.replace("$", r"\$")


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(_plain(text), width)) or _plain(text)
