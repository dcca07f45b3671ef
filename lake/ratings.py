"""A/B ratings: a person's judgement of two models' images of the same noise and class, kept in ``ratings``.

Each rating is its own writer session and commit (`LakeWriter`), so a rating the page
confirmed survives kill -9 and a killed write leaves no partial row. The table is
append-only: a rater who changes their mind adds a later row, and `latest_ratings` keeps
each rater's last word on a pair.
"""
from __future__ import annotations

import datetime as _dt
import os
import uuid
from dataclasses import asdict, dataclass, fields
from typing import Any

from .layout import RATING_CHOICES, ratings_spec
from .provenance import Provenance
from .writer import LakeWriter

SIDES = ("first", "second")


@dataclass(frozen=True)
class Rating:
    """One row of ``ratings`` (see `lake.layout.ratings_spec` for the columns)."""

    first_sample_id: str
    second_sample_id: str
    first_model: str
    second_model: str
    choice: str  # one of RATING_CHOICES
    left: str  # which sample was on the left: "first" or "second"
    rater: str
    rated_at: str = ""  # ISO 8601 UTC; `append_rating` stamps it when empty
    rating_id: str = ""  # <rated_at>-<8 hex digits>; `append_rating` stamps it when empty

    def check(self) -> Rating:
        """This rating, with `rater` stripped; ValueError (one line) for a bad choice, side, rater or empty id."""
        if self.choice not in RATING_CHOICES:
            raise ValueError(f"rating choice must be one of {', '.join(RATING_CHOICES)}, got {self.choice!r}")
        if self.left not in SIDES:
            raise ValueError(f"rating side must be first or second, got {self.left!r}")
        rater = " ".join(self.rater.split())
        if not rater:
            raise ValueError("a rating needs the rater's name")
        if not (self.first_sample_id and self.second_sample_id and self.first_model and self.second_model):
            raise ValueError("a rating names both samples and both models")
        return Rating(**{**asdict(self), "rater": rater})


def append_rating(path: str | os.PathLike[str], rating: Rating) -> Rating:
    """Append `rating` to the lake's ``ratings`` table and commit; returns the row as stored.

    Raises ValueError (bad rating, nothing written) or `LakeLockedError` while a job writes
    the lake (nothing written: try again when it is done).
    """
    rating = rating.check()
    rated_at = rating.rated_at or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    rating = Rating(**{**asdict(rating), "rated_at": rated_at, "rating_id": rating.rating_id or f"{rated_at}-{uuid.uuid4().hex[:8]}"})
    provenance = Provenance(job="explorer rating", argv=[], parameters={"rater": rating.rater})
    with LakeWriter.open(path, provenance, create=False) as writer:
        writer.table(ratings_spec()).append({name: [value] for name, value in asdict(rating).items()})
    return rating


def read_ratings(lake: Any) -> list[Rating]:
    """Every row of the lake's ``ratings`` (an `open_lake` reader), in the order rated; [] when there is none."""
    try:
        ds = lake.ratings()
    except KeyError:
        return []
    columns = {field.name: ds[field.name].values.tolist() for field in fields(Rating)}
    return [Rating(**{name: str(values[row]) for name, values in columns.items()}) for row in range(ds.sizes["rating"])]


def latest_ratings(ratings: list[Rating]) -> list[Rating]:
    """Each rater's last rating of each pair, in the order those were made."""
    last: dict[tuple[str, str, str], Rating] = {}
    for rating in ratings:
        key = (rating.rater, rating.first_sample_id, rating.second_sample_id)
        last.pop(key, None)  # re-inserted at the end: the order is that of the latest ratings
        last[key] = rating
    return list(last.values())
