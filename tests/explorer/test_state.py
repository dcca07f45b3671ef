from dataclasses import replace

from explorer.state import ViewState, brush_window, decode_query_params, encode_query_params


def test_round_trip_of_a_full_state():
    state = ViewState(
        embedding="enc.8x8_block2@sigma2/umap3d-n15",
        color_by="compare.real_fraction",
        palette="cividis",
        classes=(1, 207),
        sources=("generated",),
        splits=("train", "val"),
        window=(-1.5, 2.25, 0.0, 3.0),
        rotation=(30.0, -15.0),
        selected="in64/train_data_batch_1/5",
        manual=("gen/m/s7/3", "in64/train_data_batch_1/9"),
        k=25,
        neighbour_space="projection",
        max_points=20000,
        page="compare",
    )
    params = encode_query_params(state)
    assert all(isinstance(v, str) for v in params.values())
    assert decode_query_params(params) == state


def test_defaults_are_left_out_and_decode_to_defaults():
    assert encode_query_params(ViewState()) == {}
    assert decode_query_params({}) == ViewState()


def test_malformed_parameters_fall_back_field_by_field():
    state = decode_query_params(
        {"k": "lots", "win": "1,0,2,3", "rot": "a,b", "classes": "1,x,5000,7", "palette": "rainbow<script>", "nn": "x", "page": "../", "pts": "9"}
    )
    assert state.k == ViewState().k
    assert state.window is None  # x0 >= x1
    assert state.rotation == (0.0, 0.0)
    assert state.classes == (1, 7)
    assert state.palette == ""
    assert state.neighbour_space == "activation"
    assert state.page == "explore"
    assert state.max_points == ViewState().max_points


def test_list_values_from_repeated_parameters_use_the_last():
    assert decode_query_params({"k": ["3", "7"]}).k == 7


def test_clicks_select_then_toggle_manual_neighbours():
    state = ViewState().with_click("a")
    assert state.selected == "a" and state.manual == ()
    state = state.with_click("b").with_click("c")
    assert state.manual == ("b", "c")
    state = state.with_click("b")
    assert state.manual == ("c",)
    assert state.with_click("a") == state  # clicking the selected point changes nothing
    replaced = state.with_click("d", mode="select")
    assert replaced.selected == "d" and replaced.manual == ()
    assert state.cleared() == replace(state, selected=None, manual=())


def test_manual_never_contains_the_selected_id_after_decoding():
    state = decode_query_params({"sel": "a", "manual": "a|b|b"})
    assert state.manual == ("b",)


def test_brush_window():
    assert brush_window({"x": [3, 1], "y": [0, 2]}) == (1.0, 3.0, 0.0, 2.0)
    assert brush_window({"x": [1, 1], "y": [0, 2]}) is None
    assert brush_window({"x": [1, 2]}) is None
    assert brush_window({}) is None
