"""Activation capture by layer name."""

from __future__ import annotations

import pytest
import torch

from models import LAYER_ALIASES, capture, layer_names, load_generator, resolve_layers

TINY_SHAPES = {
    "enc.64x64_conv": (32, 64, 64),
    "enc.64x64_block0": (32, 64, 64), "enc.64x64_block1": (32, 64, 64), "enc.64x64_block2": (32, 64, 64),
    "enc.32x32_down": (32, 32, 32),
    "enc.32x32_block0": (64, 32, 32), "enc.32x32_block1": (64, 32, 32), "enc.32x32_block2": (64, 32, 32),
    "enc.16x16_down": (64, 16, 16),
    "enc.16x16_block0": (96, 16, 16), "enc.16x16_block1": (96, 16, 16), "enc.16x16_block2": (96, 16, 16),
    "enc.8x8_down": (96, 8, 8),
    "enc.8x8_block0": (128, 8, 8), "enc.8x8_block1": (128, 8, 8), "enc.8x8_block2": (128, 8, 8),
    "dec.8x8_in0": (128, 8, 8), "dec.8x8_in1": (128, 8, 8),
    "dec.8x8_block0": (128, 8, 8), "dec.8x8_block1": (128, 8, 8),
    "dec.8x8_block2": (128, 8, 8), "dec.8x8_block3": (128, 8, 8),
    "dec.16x16_up": (128, 16, 16),
    "dec.16x16_block0": (96, 16, 16), "dec.16x16_block1": (96, 16, 16),
    "dec.16x16_block2": (96, 16, 16), "dec.16x16_block3": (96, 16, 16),
    "dec.32x32_up": (96, 32, 32),
    "dec.32x32_block0": (64, 32, 32), "dec.32x32_block1": (64, 32, 32),
    "dec.32x32_block2": (64, 32, 32), "dec.32x32_block3": (64, 32, 32),
    "dec.64x64_up": (64, 64, 64),
    "dec.64x64_block0": (32, 64, 64), "dec.64x64_block1": (32, 64, 64),
    "dec.64x64_block2": (32, 64, 64), "dec.64x64_block3": (32, 64, 64),
    "out_conv": (3, 64, 64),
}


def run(G, n=2):
    x = torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 80
    onehot = torch.nn.functional.one_hot(torch.arange(n), 1000).float()
    with torch.no_grad():
        return G(x, torch.full((n,), 80.0), onehot)


def all_hooks(G):
    return [h for m in G.modules() for h in m._forward_hooks.values()]


def test_layer_names_in_forward_order(tiny_generator):
    assert layer_names(tiny_generator) == list(TINY_SHAPES)


def test_every_layer_captures_its_output(tiny_generator):
    with capture(tiny_generator, layer_names(tiny_generator)) as acts:
        run(tiny_generator)
    assert list(acts) == list(TINY_SHAPES)  # filled in forward order
    for name, shape in TINY_SHAPES.items():
        assert acts[name].shape == (2, *shape), name
        assert not acts[name].requires_grad
    assert not all_hooks(tiny_generator)


def test_aliases_resolve_to_canonical_names(tiny_generator):
    assert resolve_layers(["bottleneck", "mid", "enc.8x8_block2"], tiny_generator) == [
        "enc.8x8_block2", "dec.8x8_in0"]
    assert set(LAYER_ALIASES) >= {"bottleneck", "mid"}
    with capture(tiny_generator, ["bottleneck", "mid"]) as acts:
        run(tiny_generator)
    assert set(acts) == {"enc.8x8_block2", "dec.8x8_in0"}
    assert acts["enc.8x8_block2"].shape == (2, 128, 8, 8)


def test_captured_output_is_the_final_output(tiny_generator):
    with capture(tiny_generator, "out_conv") as acts:
        D = run(tiny_generator)
    c_skip = 0.25 / (80.0 ** 2 + 0.25)
    c_out = 80.0 * 0.5 / (80.0 ** 2 + 0.25) ** 0.5
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 80
    torch.testing.assert_close(D, c_skip * x + c_out * acts["out_conv"])


def test_hooks_removed_after_an_exception(tiny_generator):
    with pytest.raises(RuntimeError, match="boom"):
        with capture(tiny_generator, ["mid", "dec.64x64_up"]):
            assert len(all_hooks(tiny_generator)) == 2
            raise RuntimeError("boom")
    assert not all_hooks(tiny_generator)


def test_unknown_layer_lists_valid_names(tiny_generator):
    with pytest.raises(ValueError) as err:
        resolve_layers(["mid", "foo"], tiny_generator)
    message = str(err.value)
    assert message.startswith("unknown layer 'foo'; valid layers: enc.64x64_conv, ")
    assert "dec.64x64_block3" in message and "bottleneck=enc.8x8_block2" in message
    with pytest.raises(ValueError, match="unknown layer 'foo'"):
        with capture(tiny_generator, ["foo"]):
            pass
    assert not all_hooks(tiny_generator)


def test_accepts_loaded_generator():
    gen = load_generator("tiny", device="cpu")
    assert layer_names(gen) == list(TINY_SHAPES)
    with capture(gen, ["bottleneck"]) as acts:
        run(gen.module, n=1)
    assert acts["enc.8x8_block2"].shape == (1, 128, 8, 8)


def test_stop_early_captures_the_same_values_and_skips_the_rest():
    import models

    G = models.build_generator("tiny")
    noise, classes = models.sample_batch(0, range(2))
    labels = torch.nn.functional.one_hot(classes, 1000).to(torch.float32)
    sigma = torch.full((2,), 2.0)
    with torch.inference_mode():
        with models.capture(G, ["bottleneck"]) as full:
            G(noise, sigma, labels)
        with models.capture(G, ["bottleneck", "enc.64x64_conv"], stop_early=True) as early, \
                models.capture(G, ["dec.64x64_block3"]) as later:
            G(noise, sigma, labels)
            ran_past_the_stop = True
    assert "ran_past_the_stop" not in locals()  # the body ended at the stop
    assert torch.equal(early["enc.8x8_block2"], full["enc.8x8_block2"])
    assert "enc.64x64_conv" in early and later == {}  # the decoder never ran
    assert not any(m._forward_hooks for m in G.modules())
