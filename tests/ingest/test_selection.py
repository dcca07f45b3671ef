import numpy as np
import pytest

from ingest.errors import InputError
from ingest.pipeline import prefetch
from ingest.selection import Selection, parse_selection


def test_selection_combines_classes_per_class_and_limit():
    labels = np.array([5, 7, 5, 9, 5, 7, 7, 5])
    assert np.flatnonzero(Selection().mask(labels)).tolist() == list(range(8))
    assert np.flatnonzero(Selection(classes=frozenset({5, 7}), per_class=2).mask(labels)).tolist() == [0, 1, 2, 5]
    assert np.flatnonzero(Selection(per_class=1, limit=2).mask(labels)).tolist() == [0, 1]
    assert np.flatnonzero(Selection(limit=0).mask(labels)).tolist() == []


def test_selection_is_a_prefix_property():
    """A larger --limit selects a superset in the same order: resume adds only the difference."""
    labels = np.random.default_rng(0).integers(0, 10, 500)
    small = np.flatnonzero(Selection(per_class=5, limit=20).mask(labels))
    large = np.flatnonzero(Selection(per_class=5, limit=40).mask(labels))
    assert large[: len(small)].tolist() == small.tolist()


def test_parse_selection_errors_name_the_flag():
    assert parse_selection(None, "goldfish,n01440764,3", None).classes == frozenset({0, 1, 3})
    with pytest.raises(InputError, match="--classes"):
        parse_selection(None, "goldfish,nope", None)
    with pytest.raises(InputError, match="--per-class"):
        parse_selection(None, None, 0)


def test_prefetch_keeps_order_and_reraises_producer_errors():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def broken():
        yield 1
        raise InputError("x.npz: corrupt data")

    items = prefetch(broken())
    assert next(items) == 1
    with pytest.raises(InputError, match="corrupt"):
        next(items)
