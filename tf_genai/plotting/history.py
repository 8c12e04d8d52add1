"""Training curves from a Keras ``History``, a dict of lists or a saved ``history.json``."""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tf_genai.errors import DataError
from tf_genai.plotting._common import finish, new_figure

PathLike = str | os.PathLike


def load_history(history_or_path: Any) -> dict[str, list[float]]:
    """The metric -> per-epoch values dict of a History, a dict or a JSON file.

    A JSON file may hold the dict itself or ``{"history": {...}}`` (Keras' ``History`` layout).
    """
    source = "history"
    obj = history_or_path
    if isinstance(obj, (str, os.PathLike)):
        source = os.fspath(obj)
        try:
            with open(source, encoding="utf-8") as f:
                obj = json.load(f)
        except FileNotFoundError:
            raise DataError(f"{source}: history file not found") from None
        except json.JSONDecodeError as err:
            raise DataError(f"{source}: not a JSON history file ({err})") from None
    if hasattr(obj, "history") and not isinstance(obj, Mapping):
        obj = obj.history  # keras.callbacks.History
    if isinstance(obj, Mapping) and isinstance(obj.get("history"), Mapping):
        obj = obj["history"]
    if not isinstance(obj, Mapping):
        raise DataError(f"{source}: expected a dict of metric lists, got {type(obj).__name__}")
    history = {}
    for key, values in obj.items():
        if isinstance(values, (list, tuple, np.ndarray)) and len(values) > 0:
            try:
                history[str(key)] = [float(v) for v in values]
            except (TypeError, ValueError):
                continue  # not a numeric series (e.g. a list of strings): nothing to plot
    if not history:
        raise DataError(f"{source}: no numeric metric series to plot")
    return history


# Shown after the metrics: schedules, not results.
_SCHEDULES = ("kl_weight", "learning_rate", "lr")


def _metric(key: str) -> str:
    return key[4:] if key.startswith("val_") else key


def metric_groups(history: Mapping[str, Sequence[float]]) -> dict[str, list[str]]:
    """Keys grouped by metric: ``{"loss": ["loss", "val_loss"], ...}``.

    A metric named after another one plus a suffix is one of its parts and shares its axes
    (``d_loss_real`` and ``d_loss_fake`` go with ``d_loss``). Order: ``loss`` first, then the
    other metrics as they come (Keras sorts them by name), then schedules such as
    ``kl_weight``; within a group, each metric's training curve before its validation curve.
    """
    metrics = list(dict.fromkeys(_metric(key) for key in history))

    def parent(name: str) -> str:
        owners = [m for m in metrics if m != name and name.startswith(m + "_")]
        return max(owners, key=len) if owners else name

    groups: dict[str, list[str]] = {}
    for key in history:
        groups.setdefault(parent(_metric(key)), []).append(key)

    def rank(base: str) -> int:
        return 0 if base == "loss" else 2 if base in _SCHEDULES else 1

    def within(key: str) -> tuple:
        return (metrics.index(_metric(key)) if _metric(key) != parent(_metric(key)) else -1,
                key.startswith("val_"))

    return {base: sorted(groups[base], key=within) for base in sorted(groups, key=rank)}


def plot_history(
    history_or_path: Any,
    *,
    ncols: int = 3,
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """One axes per metric group, training (solid) and validation (dashed) curves together.

    Args:
        history_or_path: a ``keras.callbacks.History``, a dict of per-epoch lists, or the path
            of a ``history.json``.
        ncols: axes per row.

    Returns:
        A Figure with exactly one axes per metric group (``loss`` with ``val_loss``; ``d_loss``
        with ``d_loss_real`` and ``d_loss_fake``; see :func:`metric_groups`).
    """
    history = load_history(history_or_path)
    groups = metric_groups(history)
    ncols = max(1, min(ncols, len(groups)))
    nrows = math.ceil(len(groups) / ncols)
    fig = new_figure((3.6 * ncols, 2.8 * nrows), layout="constrained")
    for k, (base, keys) in enumerate(groups.items()):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        names = list(dict.fromkeys(_metric(key) for key in keys))
        for key in keys:
            values = np.asarray(history[key])
            epochs = np.arange(1, len(values) + 1)
            is_val = key.startswith("val_")
            if len(names) == 1:
                label = "validation" if is_val else "train"
            else:  # several metrics on one axes: name them
                label = key
            ax.plot(
                epochs, values, "--" if is_val else "-", marker="o" if len(values) < 15 else None,
                ms=3, label=label, color=f"C{names.index(_metric(key))}",
            )
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize="small")
        # whole epochs on the x axis: a 1-epoch run would otherwise get ticks 0.96 ... 1.04
        num_epochs = max(len(history[key]) for key in keys)
        if num_epochs <= 12:
            ax.set_xticks(np.arange(1, num_epochs + 1))
            ax.set_xlim(0.5, num_epochs + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        fig.suptitle(title)
    return finish(fig, path)


__all__: Sequence[str] = ["load_history", "metric_groups", "plot_history"]
