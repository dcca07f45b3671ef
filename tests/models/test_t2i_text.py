"""encode_prompts against diffusers' own pipelines' encode_prompt, on tiny SDXL and SD v1.5 bases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.t2i import PromptEmbeds, Truncation, encode_prompts, load_t2i, truncated_prompts
from models.t2i.reference import diffusers_pipeline
from tests.models.t2i_helpers import tiny_base

PROMPTS = ["a photo of a cat", "an astronaut riding a horse on the moon, oil painting", ""]


@pytest.fixture(scope="module", params=["sdxl", "sd15"])
def loaded(request, tmp_path_factory):
    base = tiny_base(tmp_path_factory, request.param)
    return base, load_t2i(base)


def test_embeddings_equal_the_pipeline_encode_prompt(loaded):
    base, model = loaded
    pipe = diffusers_pipeline(model, base)
    ours = encode_prompts(model, PROMPTS)
    for row, prompt in enumerate(PROMPTS):  # one prompt at a time, as we encode
        if model.family.name == "sdxl":
            embeds, _, pooled, _ = pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False)
            assert embeds.shape == (1, 77, 32 + 64) and pooled.shape == (1, 64)
            assert torch.equal(ours.pooled[row:row + 1], pooled)
        else:
            embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
            assert embeds.shape == (1, 77, 32)
            ids = model.tokenizers[0](prompt, padding="max_length", max_length=77, return_tensors="pt").input_ids
            with torch.no_grad():
                assert torch.equal(ours.pooled[row:row + 1], model.text_encoders[0](ids).pooler_output)
        assert torch.equal(ours.embeds[row:row + 1], embeds)
    # Different prompts give different embeddings (the test above could not pass on constants).
    assert not torch.equal(ours.embeds[0], ours.embeds[1]) and not torch.equal(ours.pooled[0], ours.pooled[1])


def test_batching_changes_nothing_and_rows_can_be_taken(loaded):
    _, model = loaded
    together = encode_prompts(model, PROMPTS)
    for row, prompt in enumerate(PROMPTS):
        alone = encode_prompts(model, [prompt])
        assert torch.equal(together.embeds[row], alone.embeds[0])
        assert torch.equal(together.pooled[row], alone.pooled[0])
    taken = together.take([1, 1, 0])
    assert len(taken) == 3 and torch.equal(taken.embeds[2], together.embeds[0])
    assert torch.equal(PromptEmbeds.cat([taken, together]).pooled[3:], together.pooled)
    pooled = together.pooled_numpy()
    assert pooled.dtype == np.float32 and pooled.shape == (3, together.pooled.shape[1])
    with pytest.raises(TypeError):
        encode_prompts(model, "a photo of a cat")  # a bare string would be encoded letter by letter


def test_prompts_longer_than_77_tokens_are_named_with_what_was_kept(loaded, capfd):
    _, model = loaded
    long = " ".join(["cat"] * 100)  # "cat" is one CLIP token: 100 + BOS + EOS
    assert truncated_prompts(model, [PROMPTS[0], long, long, ""]) == [Truncation(long, 77, 102)]
    assert "longer than the specified maximum" not in capfd.readouterr().err  # no per-prompt transformers warning
    # What it names is what encode_prompts does: the first 77 tokens only.
    assert torch.equal(encode_prompts(model, [long]).embeds, encode_prompts(model, [" ".join(["cat"] * 75)]).embeds)
