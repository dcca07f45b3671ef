import numpy as np

from conftest import KEY, NAME_2D, NAME_3D
from explorer.lake_status import EmbeddingInfo, LakeState, diagnose_lake, embedding_model, group_by_model
from explorer.rows import HashIndex, align_rows, factorize, hash_ids, row_uniform, same_rows
from explorer.session import LakeSession
from lake import LakeWriter, Provenance


def test_diagnosis_of_missing_foreign_empty_samples_only_and_ready_lakes(tmp_path, small_lake, samples_only_lake):
    missing = diagnose_lake(tmp_path / "nowhere")
    assert missing.state is LakeState.MISSING and "make demo" in missing.command
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    assert diagnose_lake(foreign).state is LakeState.NOT_A_LAKE
    empty = tmp_path / "empty"
    with LakeWriter.open(empty, Provenance(job="create")):
        pass
    assert diagnose_lake(empty).state is LakeState.EMPTY
    no_embeddings = diagnose_lake(samples_only_lake.path)
    assert no_embeddings.state is LakeState.NO_EMBEDDINGS
    assert no_embeddings.command == f"python -m analysis run --lake {samples_only_lake.path}"
    assert diagnose_lake(small_lake.path).state is LakeState.READY


def test_embeddings_are_listed_with_their_parameters(small_lake):
    session = LakeSession(small_lake.path)
    assert [(e.key, e.name, e.dims) for e in session.embeddings] == [(KEY, NAME_2D, 2), (KEY, NAME_3D, 3)]
    info = session.embeddings[0]
    assert info.layer == "enc.8x8_block2" and info.sigma == "2" and info.rows == len(small_lake.sample_ids)
    assert "trustworthiness 0.910" in info.label()


def test_frame_aligns_a_shuffled_embedding_to_the_samples_table(shuffled_lake):
    session = LakeSession(shuffled_lake.path)
    frame = session.frame(f"{KEY}/{NAME_2D}")
    order = shuffled_lake.analysis_order
    assert not np.array_equal(order, np.arange(len(order)))
    assert np.array_equal(frame.sample_row, order)
    assert np.array_equal(frame.class_id, shuffled_lake.class_ids[order])
    sources = np.array(frame.sources)[frame.source_code]
    assert np.array_equal(sources, shuffled_lake.sources[order])
    assert frame.rows_of([shuffled_lake.sample_ids[order[5]], "no/such/id"]).tolist() == [5, -1]
    # a samples-table column is reordered to the embedding; compare metrics come aligned by id
    seeds = session.column_values(frame.info.ref, "samples.seed")
    assert np.array_equal(seeds, session.lake.column("samples", "seed")[order])


def test_stored_sample_row_and_id_join_give_the_same_frame(shuffled_lake):
    # The 2D embedding stores sample_row (ids are then read only when needed); the 3D one
    # does not, so it is joined to the samples table by id.
    session = LakeSession(shuffled_lake.path)
    order = shuffled_lake.analysis_order
    stored, joined = session.frame(f"{KEY}/{NAME_2D}"), session.frame(f"{KEY}/{NAME_3D}")
    assert stored._ids is None and stored._id_hash is None and joined._id_hash is not None
    for frame in (stored, joined):
        assert np.array_equal(frame.sample_row, order)
        assert frame.sample_id.tolist() == shuffled_lake.sample_ids[order].tolist()
        assert frame.rows_of([shuffled_lake.sample_ids[order[7]]]).tolist() == [7]
    # the k-NN table carries sample_row in the same order: aligned without reading ids
    assert np.array_equal(session.table_rows(f"analysis/knn/{KEY}", stored.info.ref), np.arange(len(order)))


def test_rows_of_scans_few_ids_and_indexes_many_with_the_same_answer(shuffled_lake):
    frame = LakeSession(shuffled_lake.path).frame(f"{KEY}/{NAME_2D}")
    order = shuffled_lake.analysis_order
    few = [shuffled_lake.sample_ids[order[9]], "no/such/id", shuffled_lake.sample_ids[order[0]]]
    assert frame.rows_of(few).tolist() == [9, -1, 0]
    assert frame._sorted is None  # answered by a scan, no hash index built
    assert frame.rows_of(few[::-1]).tolist() == [0, -1, 9]  # remembered rows, same answers
    many = few + list(shuffled_lake.sample_ids[order[20:40]])
    assert frame.rows_of(many).tolist() == [9, -1, 0, *range(20, 40)]
    assert frame._sorted is not None and frame.rows_of(few).tolist() == [9, -1, 0]


def test_same_rows_needs_equal_rows_all_in_the_samples_table():
    assert same_rows(np.array([3, 1, 2]), np.array([3, 1, 2]))
    assert not same_rows(np.array([3, 1, 2]), np.array([3, 2, 1]))
    assert not same_rows(np.array([3, 1]), np.array([3, 1, 2]))
    assert not same_rows(np.array([3, -1, 2]), np.array([3, -1, 2]))  # -1 does not identify a sample
    assert not same_rows(np.array([0, 1]), np.array(["0", "1"]))


def test_row_uniform_is_deterministic_uniform_and_prefix_stable():
    u = row_uniform(200_000)
    assert u.dtype == np.float64 and ((u >= 0) & (u < 1)).all()
    assert np.array_equal(u[:1000], row_uniform(1000))  # a row's number depends only on the row
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.abs(counts - 20_000).max() < 1_000  # ~7 sigma of a binomial(200k, 0.1)
    assert abs(float(np.corrcoef(u[:-1], u[1:])[0, 1])) < 0.01  # neighbouring rows are not correlated


def test_compare_columns_and_summary(small_lake):
    session = LakeSession(small_lake.path)
    refs = [c.ref for c in session.columns(f"{KEY}/{NAME_2D}")]
    assert "compare.real_fraction" in refs and "samples.seed" in refs and "samples.sample_id" not in refs and "compare.sample_row" not in refs
    values = session.column_values(f"{KEY}/{NAME_2D}", "compare.real_fraction")
    assert values.shape == (len(small_lake.sample_ids),) and ((values >= 0) & (values <= 1)).all()
    overall, per_class = session.compare_summary(KEY)
    assert "mean_real_fraction_of_generated" in overall
    assert per_class["class"].tolist()[0] == "1: goldfish"
    assert {"class_id", "n_real", "mean_real_fraction"} <= set(per_class.columns)


def test_hash_ids_is_stable_and_distinct():
    ids = np.array([f"in64/train_data_batch_1/{i}" for i in range(5000)] + ["gen/é/s1/0"], dtype=object)
    h = hash_ids(ids)
    assert len(np.unique(h)) == len(ids)
    assert np.array_equal(h, hash_ids(ids.astype(np.dtypes.StringDType())))
    assert hash_ids(np.array(["abc"]))[0] == np.uint64(hash_ids(np.array(["abc"], dtype=object))[0])
    assert hash_ids(np.array(["abc"]))[0] != hash_ids(np.array(["abd"]))[0]


def test_factorize_gives_sorted_categories():
    codes, cats = factorize(np.array(["real", "generated", "real", "val"], dtype=object))
    assert cats == ("generated", "real", "val")
    assert codes.tolist() == [1, 0, 1, 2]
    many = np.array([f"c{i % 50}" for i in range(200)], dtype=object)
    codes, cats = factorize(many)
    assert len(cats) == 50 and np.array_equal(np.array(cats)[codes], many)


def test_align_rows_prefix_and_permutation():
    source = np.array(["a", "b", "c", "d"], dtype=object)
    assert align_rows(np.array(["a", "b"], dtype=object), source).tolist() == [0, 1]
    assert align_rows(np.array(["d", "x", "b"], dtype=object), source).tolist() == [3, -1, 1]


def test_hash_of_an_id_does_not_depend_on_the_batch():
    alone = hash_ids(np.array(["in64/a/1"], dtype=object))[0]
    batched = hash_ids(np.array(["x" * 70, "in64/a/1"], dtype=object))[1]
    assert alone == batched


def test_hash_index_verifies_ids_and_align_rows_hashes_only_when_it_must():
    ids = np.array(["a", "b", "c", "d"], dtype=np.dtypes.StringDType())
    index = HashIndex(ids)
    assert index.rows(np.array(["d", "zz", "a"], dtype=np.dtypes.StringDType())).tolist() == [3, -1, 0]
    # Colliding hashes never give a wrong row: every hit is checked on the id itself.
    colliding = HashIndex(ids, np.zeros(4, np.uint64))
    found = colliding.rows(ids, np.zeros(4, np.uint64))
    assert all(r in (-1, i) for i, r in enumerate(found.tolist())) and (found >= 0).any()
    assert HashIndex(np.zeros(0, dtype=object)).rows(np.array(["a"], dtype=object)).tolist() == [-1]
    calls = []

    def source_hash():
        calls.append("source")
        return hash_ids(ids)

    # Same order (a prefix): no hash is computed; otherwise the given hashes are used.
    assert align_rows(ids[:2], ids, source_hash).tolist() == [0, 1] and calls == []
    assert align_rows(ids[::-1], ids, source_hash).tolist() == [3, 2, 1, 0] and calls == ["source"]


def test_embeddings_group_by_the_model_whose_layer_they_project():
    def info(key: str, name: str = "umap2d") -> EmbeddingInfo:
        return EmbeddingInfo(path=f"analysis/embeddings/{key}/{name}", key=key, name=name, dims=2, rows=1)

    embeddings = [info("dec.8x8_in0@sigma10"), info("dmd2-sdxl-4step.mid@t499"), info("enc.8x8_block2@sigma2"),
                  info("teacher.enc.8x8_block2@sigma2"), info("teacher.out_conv@sigma2", "umap3d")]
    assert [embedding_model(e.layer) for e in embeddings] == ["", "dmd2-sdxl-4step", "", "teacher", "teacher"]
    groups = group_by_model(embeddings, "tiny", {"dmd2-sdxl-4step"})
    assert [(g.name, g.label) for g in groups] == [
        ("", "tiny (the lake's first model)"), ("dmd2-sdxl-4step", "dmd2-sdxl-4step · text-to-image"), ("teacher", "teacher · ImageNet")]
    assert groups[0].refs == ("dec.8x8_in0@sigma10/umap2d", "enc.8x8_block2@sigma2/umap2d")
    assert groups[2].refs == ("teacher.enc.8x8_block2@sigma2/umap2d", "teacher.out_conv@sigma2/umap3d")
    # A lake made before the registry names no first model; a one-model lake is one group.
    assert [g.label for g in group_by_model(embeddings[:1], None, set())] == ["the ImageNet generator"]
