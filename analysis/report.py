"""Reading a stored comparison back as plain records (for the CLI table, --json and notebooks)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import METRIC_NAMES
from .results import require_group, to_attr
from .store import as_key, as_lake


def compare_report(lake: Any, key: Any) -> dict[str, Any]:
    """Overall and per-class metrics of ``analysis/compare/<key>``."""
    lake, key = as_lake(lake), as_key(key)
    require_group(lake, key.compare_group, f"run `python -m analysis compare --lake {lake.path} --layer {key.layer} --sigma {key.sigma:g}`")
    attrs = lake.result_attrs("compare", key)

    def read(name: str, dtype: Any = None) -> np.ndarray:
        return np.asarray(lake.column(key.compare_group, name), dtype=dtype)

    overall = {name: attrs.get(name) for name in METRIC_NAMES}
    overall.update({"n_real": attrs.get("n_real"), "n_generated": attrs.get("n_generated"), "k": attrs.get("parameters", {}).get("k")})
    classes = []
    columns = {name: read(f"class_{name}", np.float64) for name in METRIC_NAMES}
    labels = read("class_label", object)
    n_real = read("n_real")
    n_generated = read("n_generated")
    for i, class_id in enumerate(read("class")):
        record = {"class_id": int(class_id), "class_label": str(labels[i]), "n_real": int(n_real[i]), "n_generated": int(n_generated[i])}
        record.update({name: float(columns[name][i]) for name in METRIC_NAMES})
        classes.append(record)
    # NaN (too few samples) becomes None, so the report is valid JSON.
    return to_attr({"key": key.name, "group": key.compare_group, "space": attrs.get("space"), "overall": overall, "classes": classes})
