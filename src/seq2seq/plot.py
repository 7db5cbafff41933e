"""Attention heatmaps and learning curves as PNG files (matplotlib, Agg: no display needed, no
global backend change).

    plot_attention(weights, src_tokens, tgt_tokens, "sentence.png")

Source tokens run along the top (columns), output tokens down the side (rows), one cell per
weight, with a colour bar from 0 to 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

log = logging.getLogger(__name__)

CELL_INCHES = 0.32  # one token per cell: readable labels at 100 dpi


def plot_attention(
    weights: Tensor | Sequence[Sequence[float]],
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    path: str | Path,
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Writes a heatmap of ``weights`` (len(tgt_tokens), len(src_tokens)) to ``path`` (PNG)."""
    fig = attention_figure(weights, src_tokens, tgt_tokens, title, dpi)
    path = Path(path)
    fig.savefig(path, format="png", bbox_inches="tight", pad_inches=0.1)
    log.debug("wrote %s", path)
    return path


def attention_figure(
    weights: Tensor | Sequence[Sequence[float]],
    src_tokens: Sequence[str],
    tgt_tokens: Sequence[str],
    title: str | None = None,
    dpi: int = 100,
):
    """The heatmap as a matplotlib Figure (for files, TensorBoard, notebooks)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data = weights.detach().float().cpu().numpy() if isinstance(weights, Tensor) else weights
    rows, cols = len(tgt_tokens), len(src_tokens)
    if (len(data), len(data[0]) if rows else 0) != (rows, cols):
        raise ValueError(
            f"attention shape {len(data)}x{len(data[0]) if len(data) else 0} does not match "
            f"{rows} target x {cols} source tokens"
        )
    longest_src = max((len(t) for t in src_tokens), default=1)
    longest_tgt = max((len(t) for t in tgt_tokens), default=1)
    label_w = 0.6 + 0.09 * longest_tgt  # room for the row labels
    label_h = 0.6 + (0.09 * longest_src if longest_src > 2 else 0.2)  # column labels (rotated)
    width = max(3.5, cols * CELL_INCHES + label_w + 1.2)  # + colour bar
    height = max(2.5, rows * CELL_INCHES + label_h + (0.4 if title else 0.1))
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(
        (label_w / width, 0.1 / height, cols * CELL_INCHES / width, rows * CELL_INCHES / height)
    )
    image = ax.imshow(data, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(cols))
    ax.set_xticklabels(src_tokens)
    ax.xaxis.tick_top()
    for tick, token in zip(ax.xaxis.get_major_ticks(), src_tokens):
        tick.label2.set_rotation(90 if len(token) > 2 else 0)  # characters stay upright
    ax.set_yticks(range(rows))
    ax.set_yticklabels(tgt_tokens)
    ax.tick_params(length=0)
    ax.set_xlabel("source")
    ax.xaxis.set_label_position("top")
    ax.set_ylabel("output")
    bar_left = (label_w + cols * CELL_INCHES + 0.15) / width
    cax = fig.add_axes((bar_left, 0.1 / height, 0.15 / width, rows * CELL_INCHES / height))
    fig.colorbar(image, cax=cax)
    if title:
        fig.suptitle(title, y=1 - 0.05 / height, va="top", fontsize=10)
    return fig


def plot_learning_curves(metrics_path: str | Path, path: str | Path, dpi: int = 100) -> Path:
    """Learning curves from a run's ``metrics.jsonl``: train and dev loss, the dev metric and the
    learning rate against the update step, one panel each, written to ``path`` (PNG)."""
    import json

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics_path = Path(metrics_path)
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line]
    train = [r for r in records if r["kind"] == "train"]
    valid = [r for r in records if r["kind"] == "valid"]
    if not train and not valid:
        raise ValueError(f"{metrics_path}: no train or validation records to plot")
    known = {"kind", "step", "loss", "ppl", "lr", "seconds", "examples"}
    metric = next((k for k in (valid[0] if valid else {}) if k not in known), None)
    fig = Figure(figsize=(13, 3.6), dpi=dpi)
    FigureCanvasAgg(fig)
    ax_loss, ax_metric, ax_lr = fig.subplots(1, 3)
    ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label="train")
    ax_loss.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o-", label="dev")
    ax_loss.set_title("loss (label-smoothed)")
    ax_loss.legend()
    if metric is not None:
        ax_metric.plot([r["step"] for r in valid], [r[metric] for r in valid], "o-", color="C2")
    ax_metric.set_title(f"dev {metric or 'metric'}")
    lr = [r for r in train if "lr" in r]
    ax_lr.plot([r["step"] for r in lr], [r["lr"] for r in lr], color="C3")
    ax_lr.set_title("learning rate")
    for ax in (ax_loss, ax_metric, ax_lr):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    return path
