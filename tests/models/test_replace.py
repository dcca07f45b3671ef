"""Activation replacement by layer name (models.replace): activation masking for edits."""

from __future__ import annotations

import pytest
import torch

from models import capture, replace


def inputs(n: int = 2):
    x = torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 80
    onehot = torch.nn.functional.one_hot(torch.arange(n) * 7, 1000).float()
    return x, torch.full((n,), 80.0), onehot


def forward(G, x, sigma, onehot, layers=()):
    with torch.no_grad(), capture(G, list(layers)) as acts:
        out = G(x, sigma, onehot)
    return out, dict(acts)


@pytest.mark.parametrize("layer", ["enc.8x8_block2", "dec.8x8_in0", "dec.32x32_block1"])
def test_replacing_a_layer_by_its_own_output_changes_nothing(tiny_generator, layer):
    x, sigma, onehot = inputs(1)
    reference, acts = forward(tiny_generator, x, sigma, onehot, [layer])
    with replace(tiny_generator, layer, acts[layer][0]):
        replaced, _ = forward(tiny_generator, x, sigma, onehot)
    assert (replaced - reference).abs().max().item() <= 1e-6


def test_replacement_changes_the_output_and_is_removed_on_exit(tiny_generator):
    x, sigma, onehot = inputs(2)
    reference, acts = forward(tiny_generator, x, sigma, onehot, ["bottleneck"])
    other = torch.zeros_like(acts["enc.8x8_block2"][0])
    with replace(tiny_generator, "bottleneck", other):  # an alias resolves like capture's
        replaced, _ = forward(tiny_generator, x, sigma, onehot)
    assert (replaced - reference).abs().max().item() > 1e-3
    again, _ = forward(tiny_generator, x, sigma, onehot)
    assert torch.equal(again, reference)


def test_the_value_is_broadcast_over_the_batch(tiny_generator):
    x, sigma, onehot = inputs(2)
    layer = "dec.8x8_in0"
    _, acts = forward(tiny_generator, x, sigma, onehot, [layer])
    value = acts[layer][0]
    with replace(tiny_generator, layer, value[None]), capture(tiny_generator, [layer]) as seen:
        forward(tiny_generator, x, sigma, onehot)
    # Registered after replace, capture sees what replace returned: the same map for both samples.
    assert torch.equal(seen[layer][0], value) and torch.equal(seen[layer][1], value)


def test_a_masked_replacement_changes_only_the_masked_positions_and_channels(tiny_generator):
    x, sigma, onehot = inputs(2)
    layer = "enc.8x8_block2"
    _, acts = forward(tiny_generator, x, sigma, onehot, [layer])
    own = acts[layer]
    value = torch.full_like(own[0], 5.0)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:5, 3:7] = True
    channels = [0, 9, 127]
    with replace(tiny_generator, layer, value, mask=mask, channels=channels), \
            capture(tiny_generator, [layer]) as seen:
        forward(tiny_generator, x, sigma, onehot)
    got = seen[layer]
    where = torch.zeros_like(own[0], dtype=torch.bool)
    where[channels] = mask
    assert torch.equal(got[:, where], torch.full_like(got[:, where], 5.0))
    assert torch.equal(got[:, ~where], own[:, ~where])  # everything else is the block's own output

    with replace(tiny_generator, layer, value, mask=mask), capture(tiny_generator, [layer]) as seen:
        forward(tiny_generator, x, sigma, onehot)
    assert torch.equal(seen[layer][:, :, mask], torch.full_like(seen[layer][:, :, mask], 5.0))
    assert torch.equal(seen[layer][:, :, ~mask], own[:, :, ~mask])


def test_bad_replacements_are_refused(tiny_generator):
    x, sigma, onehot = inputs(1)
    with pytest.raises(ValueError, match="unknown layer"):
        with replace(tiny_generator, "nope", torch.zeros(1)):
            pass
    with pytest.raises(ValueError, match="channels must lie in"):
        with replace(tiny_generator, "bottleneck", torch.zeros(128, 8, 8), channels=[128]):
            pass
    with pytest.raises(ValueError, match="replacement is"):
        with replace(tiny_generator, "bottleneck", torch.zeros(64, 8, 8)):
            forward(tiny_generator, x, sigma, onehot)
    with pytest.raises(ValueError, match="mask has shape"):
        with replace(tiny_generator, "bottleneck", torch.zeros(128, 8, 8), mask=torch.ones(4, 4, dtype=torch.bool)):
            forward(tiny_generator, x, sigma, onehot)
