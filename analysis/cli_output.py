"""What `python -m analysis` prints: aligned text tables of outcomes, metrics and CKA matrices."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.4g}"
    return str(value)


def print_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def print_compare(report: dict[str, Any], max_classes: int, all_classes: str = "--json") -> None:
    overall = report["overall"]
    print(f"{report['key']}: {overall['n_real']} real, {overall['n_generated']} generated, k={overall['k']}, {report['space']}")
    columns = ["scope", "n_real", "n_generated", "frechet_distance", "precision", "recall", "density", "coverage"]
    rows = [{"scope": "overall", **overall}]
    ranked = sorted(report["classes"], key=lambda r: -(r["frechet_distance"] if r["frechet_distance"] is not None else -1.0))
    rows += [{"scope": r["class_label"], **r} for r in ranked[: max(0, max_classes)]]
    print_table(rows, columns)
    if len(ranked) > max_classes:
        print(f"... {len(ranked) - max_classes} more classes (--max-classes N, or {all_classes} for all)")


def print_sets(report: dict[str, Any], max_classes: int) -> None:
    """A sets comparison: the overall metrics, then the classes with the largest Frechet distance."""
    overall = report["overall"]
    print(f"{report['key']}: {report['second']} against {report['first']}: {overall['n_first']} and {overall['n_second']} "
          f"samples, k={overall['k']}, {report['space']}")
    columns = ["scope", "n_first", "n_second", "frechet_distance", "precision", "recall", "density", "coverage"]
    ranked = sorted(report["classes"], key=lambda r: -(r["frechet_distance"] if r["frechet_distance"] == r["frechet_distance"] else -1.0))
    print_table([{"scope": "overall", **overall}, *({"scope": r["class_label"], **r} for r in ranked[: max(0, max_classes)])], columns)
    if len(ranked) > max_classes:
        print(f"... {len(ranked) - max_classes} more classes (--max-classes N)")


def print_outcomes(outcomes: list[Any]) -> None:
    columns = ["analysis", "group", "reused"]
    print_table([{**o.as_dict(), "reused": "reused" if o.reused else "computed"} for o in outcomes], columns)


def print_cka(first_layers: Sequence[str], second_layers: Sequence[str], matrix: np.ndarray) -> None:
    """A CKA table: one line per layer of the first model, one column per layer of the second."""
    print_table([{"layer": row, **dict(zip(second_layers, map(float, values)))} for row, values in zip(first_layers, matrix)],
                ["layer", *second_layers])
