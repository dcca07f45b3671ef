"""Prompt encoding for the text-to-image DMD2 models, as diffusers' pipelines encode prompts.

SDXL: the penultimate hidden states of both CLIP text encoders, concatenated (768 + 1280
at full size), and the second encoder's projected ``text_embeds`` as the pooled embedding.
SD v1.5: the last hidden state of its one encoder, and its ``pooler_output``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PromptEmbeds:
    """Encoded prompts: ``embeds`` (n, 77, D) and ``pooled`` (n, P), on the model's device and dtype."""

    embeds: torch.Tensor
    pooled: torch.Tensor

    def __len__(self) -> int:
        return int(self.embeds.shape[0])

    def pooled_numpy(self) -> np.ndarray:
        """The pooled embeddings as float32 numpy (n, P): the lake's per-prompt feature."""
        return self.pooled.detach().to(device="cpu", dtype=torch.float32).numpy()

    def take(self, rows: Sequence[int]) -> PromptEmbeds:
        """The given rows, in order (repeats allowed): one row per sample for ``t2i_generate``."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.embeds.device)
        return PromptEmbeds(self.embeds.index_select(0, index), self.pooled.index_select(0, index))

    @staticmethod
    def cat(parts: Sequence[PromptEmbeds]) -> PromptEmbeds:
        """Rows of several PromptEmbeds, one after the other."""
        return PromptEmbeds(torch.cat([p.embeds for p in parts]), torch.cat([p.pooled for p in parts]))


@dataclass(frozen=True)
class Truncation:
    """A prompt longer than the text encoders take: ``kept`` of its ``total`` tokens reach them (BOS and EOS counted)."""

    prompt: str
    kept: int
    total: int


def truncated_prompts(model, prompts: Sequence[str]) -> list[Truncation]:
    """The prompts `encode_prompts` shortens (longer than the tokenizers' ``model_max_length``, 77 for CLIP),
    once each, in order. diffusers cuts them silently too; this lets a caller say so."""
    limit = min(int(tokenizer.model_max_length) for tokenizer in model.tokenizers)
    out = []
    for prompt in dict.fromkeys(prompts):
        # verbose=False: no transformers warning per prompt ("sequence length is longer than ..."); the caller
        # reports every shortened prompt in one line.
        total = max(len(tokenizer(prompt, truncation=False, verbose=False).input_ids) for tokenizer in model.tokenizers)
        if total > limit:
            out.append(Truncation(prompt, limit, total))
    return out


def _token_ids(tokenizer, prompt: str, device) -> torch.Tensor:
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids
    return ids.to(device)


@torch.no_grad()
def encode_prompts(model, prompts: Sequence[str]) -> PromptEmbeds:
    """Encode each prompt on its own (a batch of 1 each, so batching never changes a prompt's embedding).

    ``model``: a ``LoadedT2I``. The empty prompt "" is valid (the unconditional embedding).
    Prompts longer than 77 tokens are truncated, as diffusers does (`truncated_prompts` names them).
    """
    if isinstance(prompts, str):
        raise TypeError("encode_prompts takes a sequence of prompts, not one string")
    embeds, pooled = [], []
    for prompt in prompts:
        if model.family.dual_encoder:
            states = []
            pool = None
            for tokenizer, encoder in zip(model.tokenizers, model.text_encoders):
                out = encoder(_token_ids(tokenizer, prompt, model.device), output_hidden_states=True)
                states.append(out.hidden_states[-2])  # penultimate layer, as SDXL was trained
                pool = out[0] if out[0].ndim == 2 else pool  # text_embeds of the projection model
            if pool is None:
                raise ValueError("SDXL's second text encoder must be a CLIPTextModelWithProjection")
            embeds.append(torch.cat(states, dim=-1))
            pooled.append(pool)
        else:
            out = model.text_encoders[0](_token_ids(model.tokenizers[0], prompt, model.device))
            embeds.append(out.last_hidden_state)
            pooled.append(out.pooler_output)
    if not embeds:
        raise ValueError("no prompts to encode")
    return PromptEmbeds(torch.cat(embeds).to(model.dtype), torch.cat(pooled).to(model.dtype))
