import numpy as np
import pytest

from lake.classes import imagenet_classes


def test_imagenet64_labels_convert_through_wnid():
    table = imagenet_classes()
    # ImageNet64 label 1 is kit fox (n02119789), standard class 278.
    assert table.class_ids_from_imagenet64(np.array([1])).tolist() == [278]
    assert table.wnids[278] == "n02119789"
    # Every ImageNet64 label maps to a distinct standard id.
    ids = table.class_ids_from_imagenet64(np.arange(1, 1001))
    assert sorted(ids.tolist()) == list(range(1000))


@pytest.mark.parametrize("bad", [0, 1001, -3])
def test_out_of_range_label_is_an_error(bad):
    with pytest.raises(ValueError, match=str(bad)):
        imagenet_classes().class_ids_from_imagenet64(np.array([5, bad]))


def test_labels_and_lookup():
    table = imagenet_classes()
    assert table.label(1) == "1: goldfish"
    assert table.resolve("goldfish") == table.resolve("n01443537") == table.resolve("1") == 1
    assert 1 in table.search("gold")
    with pytest.raises(ValueError, match="unknown class"):
        table.resolve("not-a-class")


def test_class_table_is_byte_identical_to_shared():
    # lake/data/imagenet_classes.tsv ships in the package; ../shared/data/ is where it came from.
    from tests.fixtures.shared_copies import REPO, assert_copy_of_shared

    assert_copy_of_shared(REPO / "lake" / "data" / "imagenet_classes.tsv", "data/imagenet_classes.tsv")


def test_label_refuses_ids_outside_the_table() -> None:
    table = imagenet_classes()
    assert table.label(999).startswith("999: ")
    for bad in (-1, 1000):
        with pytest.raises(ValueError, match="not an ImageNet class"):
            table.label(bad)
