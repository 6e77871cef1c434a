"""``nlptune compare``'s table (one row per combination, over its seeds) as data, Markdown and
a plot of the main metric against trainable parameters."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlptune.sweep import mean_std

logger = logging.getLogger("nlptune")
PLOT_INSTALL = "the plot needs matplotlib: pip install matplotlib"


def summarise(
    runs: list[dict[str, Any]], metrics: Mapping[str, tuple[str, bool]]
) -> list[dict[str, Any]]:
    """One row per group of ``runs`` (in their order): the main metric (``metrics``: group ->
    (name, greater is better)) on dev (test without a dev set) as mean ± std over the seeds
    that finished, and the mean of parameters, wall time, peak RSS and examples/s."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in runs:
        groups.setdefault(record["group"], []).append(record)
    rows = []
    for group, records in groups.items():
        done = [r["metrics"] for r in records if r["status"] != "failed"]
        name, greater = metrics.get(group, (None, True))
        split = "dev" if any("dev" in m for m in done) else "test"
        scores = [float(m[split][name]) for m in done if name in m.get(split, {})]
        row: dict[str, Any] = {
            "combination": group,
            "values": records[0]["values"],
            "metric": name,
            "split": split,
            "greater_is_better": greater,
            "scores": scores,
            "n": len(scores),
            "seeds": len(records),
            "failed": sum(r["status"] == "failed" for r in records),
        }
        if scores:
            row["mean"], row["std"] = mean_std(scores)
        for key, path in (
            ("trainable", ("parameters", "trainable")),
            ("total", ("parameters", "total")),
            ("wall_seconds", ("wall_seconds",)),
            ("peak_rss_mb", ("peak_rss_mb",)),
            ("examples_per_s", ("train_examples_per_s",)),
        ):
            found = [v for v in (_get(m, path) for m in done) if isinstance(v, (int, float))]
            if found:
                mean = sum(found) / len(found)
                row[key] = round(mean) if key in ("trainable", "total") else round(mean, 2)
        rows.append(row)
    return rows


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = tree
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table in Markdown: combination, metric mean ± std (n), trainable parameters (% of
    all), wall time, peak RSS, examples/s."""
    metrics = {(r["split"], r["metric"]) for r in rows if r["metric"]}
    same = len(metrics) == 1
    split, metric = next(iter(metrics)) if same else ("dev", "metric")
    lines = [
        f"| combination | {split} {metric} (mean ± std) | trainable parameters | "
        "wall time (s) | peak RSS (MB) | examples/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    row["combination"],
                    _score(row, named=not same),
                    _params(row),
                    _number(row.get("wall_seconds"), "{:.1f}"),
                    _number(row.get("peak_rss_mb"), "{:.0f}"),
                    _number(row.get("examples_per_s"), "{:.1f}"),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _score(row: dict[str, Any], named: bool) -> str:
    failed = f", {row['failed']} failed" if row["failed"] else ""
    if "mean" not in row:
        return f"— (0 of {row['seeds']} runs{failed})"
    prefix = f"{row['split']} {row['metric']} " if named else ""
    spread = f" ± {row['std']:.4f}" if row["n"] > 1 else ""
    return f"{prefix}{row['mean']:.4f}{spread} (n={row['n']}{failed})"


def _params(row: dict[str, Any]) -> str:
    if "trainable" not in row:
        return "—"
    share = f" ({100 * row['trainable'] / row['total']:.2f} %)" if row.get("total") else ""
    return f"{row['trainable']:,}{share}"


def _number(value: float | None, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def draw(rows: list[dict[str, Any]], path: Path) -> bool:
    """Plot each row's mean metric (± std as error bars) against its trainable parameters
    (log scale), one label a point. Returns False (with a warning) without matplotlib."""
    points = [r for r in rows if "mean" in r and r.get("trainable")]
    if not points:
        logger.warning("warning: no finished run to plot; %s not written", path)
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("warning: %s not written: %s", path, PLOT_INSTALL)
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in points:
        ax.errorbar(row["trainable"], row["mean"], yerr=row["std"], fmt="o", capsize=4)
        ax.annotate(
            row["combination"],
            (row["trainable"], row["mean"]),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters")
    named = {(r["split"], r["metric"]) for r in points}
    ax.set_ylabel(" ".join(next(iter(named))) if len(named) == 1 else "main metric")
    ax.set_title("metric against trainable parameters (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return True
