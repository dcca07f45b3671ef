import io

import numpy as np
import pandas as pd

from conftest import KEY, NAME_3D
from explorer import export, queries
from explorer.session import LakeSession


def test_selection_frame_lists_selected_knn_and_manual_rows(small_lake):
    session = LakeSession(small_lake.path)
    ref = f"{KEY}/{NAME_3D}"
    frame = session.frame(ref)
    nn = queries.activation_neighbours(session, ref, 4, 3)
    manual = np.array([100, 150])
    manual_d = queries.activation_distances(session, ref, 4, manual)
    table = export.selection_frame(frame, session.classes, 4, nn.rows, nn.distances, nn.space, manual, manual_d)
    assert table["role"].tolist() == ["selected", "knn", "knn", "knn", "manual", "manual"]
    assert table["sample_id"].tolist() == frame.sample_id[np.concatenate([[4], nn.rows, manual])].tolist()
    assert table["class"].iloc[0] == "1: goldfish"
    assert {"x", "y", "z", "distance", "projection_distance"} <= set(table.columns)
    assert np.allclose(table["distance"].iloc[1:4], nn.distances)
    assert np.allclose(table["distance"].iloc[4:], manual_d)
    back = pd.read_csv(io.BytesIO(export.to_csv(table)))
    assert len(back) == 6 and back["rank"].tolist() == [0, 1, 2, 3, 1, 2]


def test_view_export_round_trips_through_csv_and_parquet(small_lake):
    session = LakeSession(small_lake.path)
    frame = session.frame(f"{KEY}/{NAME_3D}")
    rows = np.flatnonzero(frame.class_id == 207)
    table = export.points_frame(frame, rows, session.classes)
    parquet = pd.read_parquet(io.BytesIO(export.to_parquet(table)))
    csv = pd.read_csv(io.BytesIO(export.to_csv(table)))
    for back in (parquet, csv):
        assert back["sample_id"].tolist() == frame.sample_id[rows].tolist()
        assert set(back["class"].astype(str)) == {"207: golden retriever"}
        assert np.allclose(back["z"], frame.coords[rows, 2])
