"""The metric rows of a run (one per epoch and split) and their files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl


def metric_row(
    epoch: int, split: str, r: dict[str, Any], lrs: tuple[float, float], bumps: int, wall: float
) -> dict[str, Any]:
    """Return the row of one split's results in one epoch.

    Parameters
    ----------
    epoch : int
        The epoch.
    split : str
        ``train``, ``validation`` or ``test``.
    r : dict
        The backend's results (``loss``, ``accuracy``, ``silent_fraction``; a chip's ``retries``
        and ``dropped_events``).
    lrs : tuple of float
        Learning rates of weights and delays in this epoch.
    bumps : int
        Steps of the epoch that bumped weights.
    wall : float
        Wall time of the epoch (s).

    Returns
    -------
    dict
        epoch, split, loss, accuracy, lr_weights, lr_delays, bumps, silent_l<i> per layer,
        retries and dropped_events (chip backends), wall_time.

    """
    row: dict[str, Any] = {
        "epoch": epoch,
        "split": split,
        "loss": float(r["loss"]),
        "accuracy": float(r["accuracy"]),
        "lr_weights": float(lrs[0]),
        "lr_delays": float(lrs[1]),
        "bumps": int(bumps),
    }
    for i, f in enumerate(r["silent_fraction"]):
        row[f"silent_l{i}"] = float(f)
    for key in ("retries", "dropped_events"):  # chip health, reported by hardware backends
        if key in r:
            row[key] = int(r[key])
    row["wall_time"] = float(wall)
    return row


def metrics_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Return metric rows as a polars DataFrame with stable dtypes."""
    if not rows:
        return pl.DataFrame(schema={"epoch": pl.Int64, "split": pl.String, "loss": pl.Float64, "accuracy": pl.Float64})
    return pl.DataFrame(rows, infer_schema_length=None)


def write_metrics(run: Path, rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Write ``metrics.parquet`` and ``metrics.csv`` of the rows into the run directory; return the frame."""
    df = metrics_frame(rows)
    df.write_parquet(run / "metrics.parquet")
    df.write_csv(run / "metrics.csv")
    return df


__all__ = ["metric_row", "metrics_frame", "write_metrics"]
