"""Reading a stored comparison back as plain records (for the CLI table, --json and notebooks)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .commands import METRIC_NAMES
from .results import require_group, to_attr
from .store import as_key, as_lake


def compare_report(lake: Any, key: Any) -> dict[str, Any]:
    """Overall and per-class metrics of ``analysis/compare/<key>``."""
    lake, key = as_lake(lake), as_key(key)
    require_group(lake, key.compare_group, f"run `python -m analysis compare --lake {lake.path} --layer {key.layer} --sigma {key.sigma:g}`")
    group = lake.root[key.compare_group]
    attrs = dict(group.attrs)
    overall = {name: attrs.get(name) for name in METRIC_NAMES}
    overall.update({"n_real": attrs.get("n_real"), "n_generated": attrs.get("n_generated"), "k": attrs.get("parameters", {}).get("k")})
    classes = []
    columns = {name: np.asarray(group[f"class_{name}"][:], dtype=np.float64) for name in METRIC_NAMES}
    labels = np.asarray(group["class_label"][:], dtype=object)
    n_real = np.asarray(group["n_real"][:])
    n_generated = np.asarray(group["n_generated"][:])
    for i, class_id in enumerate(np.asarray(group["class"][:])):
        record = {"class_id": int(class_id), "class_label": str(labels[i]), "n_real": int(n_real[i]), "n_generated": int(n_generated[i])}
        record.update({name: float(columns[name][i]) for name in METRIC_NAMES})
        classes.append(record)
    # NaN (too few samples) becomes None, so the report is valid JSON.
    return to_attr({"key": key.name, "group": key.compare_group, "space": attrs.get("space"), "overall": overall, "classes": classes})
