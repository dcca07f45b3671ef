"""The DMD2 ImageNet-64 generator: EDM preconditioning around an ADM-style U-Net.

Written to be state-dict and numerically compatible with the public DMD2
checkpoint, whose network is EDM's ``EDMPrecond`` wrapping ``DhariwalUNet``.
Module names, parameter order and the order of floating-point operations follow
that layout on purpose: parameter names are what a strict ``load_state_dict``
checks, and keeping the arithmetic in the same order is what lets the forward
pass match the reference to a few ulps rather than "roughly".

Every layer casts its weights to the dtype of its input, so a module converted
with ``.to(torch.bfloat16)`` runs in bf16 while the noise/label embedding stays
in fp32 (the preconditioning feeds it fp32 inputs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


class Linear(nn.Module):
    """Fully connected layer; parameters are left uninitialised (see `init_weights`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # matmul then a separate add (not a fused addmm) to round like the reference.
        x = x @ self.weight.to(x.dtype).t()
        if self.bias is not None:
            x = x.add_(self.bias.to(x.dtype))
        return x


class Conv2d(nn.Module):
    """Convolution with optional 2x resampling applied before it.

    ``kernel=0`` gives a weightless layer that only resamples: the checkpoint's
    skip paths of the up/down blocks are exactly that, and they still carry a
    ``resample_filter`` buffer that a strict load expects.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, bias: bool = True,
                 up: bool = False, down: bool = False):
        super().__init__()
        if up and down:
            raise ValueError("Conv2d cannot both upsample and downsample")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.down = down
        self.weight = (nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
                       if kernel else None)
        self.bias = nn.Parameter(torch.empty(out_channels)) if kernel and bias else None
        if up or down:
            # 2x2 box filter: average pooling going down, nearest-neighbour going up
            # (times 4 in the transposed convolution).
            self.register_buffer("resample_filter", torch.full((1, 1, 2, 2), 0.25), persistent=True)
        else:
            self.resample_filter = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample_filter is not None:
            f = self.resample_filter.to(x.dtype)
            channels = x.shape[1]
            if self.up:
                x = F.conv_transpose2d(x, f.mul(4).tile([channels, 1, 1, 1]), groups=channels, stride=2)
            else:
                x = F.conv2d(x, f.tile([channels, 1, 1, 1]), groups=channels, stride=2)
        if self.weight is not None:
            x = F.conv2d(x, self.weight.to(x.dtype), padding=self.weight.shape[-1] // 2)
        if self.bias is not None:
            x = x.add_(self.bias.to(x.dtype).reshape(1, -1, 1, 1))
        return x


class GroupNorm(nn.Module):
    """Group normalisation with at most 32 groups and at least 4 channels per group."""

    def __init__(self, num_channels: int, num_groups: int = 32, min_channels_per_group: int = 4,
                 eps: float = 1e-5):
        super().__init__()
        self.num_groups = max(1, min(num_groups, num_channels // min_channels_per_group))
        self.eps = eps
        self.weight = nn.Parameter(torch.empty(num_channels))
        self.bias = nn.Parameter(torch.empty(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x, num_groups=self.num_groups, weight=self.weight.to(x.dtype),
                            bias=self.bias.to(x.dtype), eps=self.eps)


class PositionalEmbedding(nn.Module):
    """Sinusoidal embedding of the noise level, ``[cos, sin]`` with frequencies 1e-4^(j/(C/2))."""

    def __init__(self, num_channels: int, max_positions: int = 10000):
        super().__init__()
        self.num_channels = num_channels
        self.max_positions = max_positions

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.num_channels // 2
        freqs = torch.arange(half, dtype=torch.float32, device=x.device) / half
        freqs = (1 / self.max_positions) ** freqs
        x = x.ger(freqs.to(x.dtype))
        return torch.cat([x.cos(), x.sin()], dim=1)


class UNetBlock(nn.Module):
    """Residual block with adaptive (scale, shift) conditioning and optional self-attention."""

    def __init__(self, in_channels: int, out_channels: int, emb_channels: int, up: bool = False,
                 down: bool = False, attention: bool = False, channels_per_head: int = 64,
                 eps: float = 1e-5):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        # At least one head so that small presets keep the full preset's layer names.
        self.num_heads = max(1, out_channels // channels_per_head) if attention else 0

        self.norm0 = GroupNorm(in_channels, eps=eps)
        self.conv0 = Conv2d(in_channels, out_channels, kernel=3, up=up, down=down)
        self.affine = Linear(emb_channels, out_channels * 2)
        self.norm1 = GroupNorm(out_channels, eps=eps)
        self.conv1 = Conv2d(out_channels, out_channels, kernel=3)
        self.skip = None
        if out_channels != in_channels or up or down:
            kernel = 1 if out_channels != in_channels else 0
            self.skip = Conv2d(in_channels, out_channels, kernel=kernel, up=up, down=down)
        if self.num_heads:
            self.norm2 = GroupNorm(out_channels, eps=eps)
            self.qkv = Conv2d(out_channels, out_channels * 3, kernel=1)
            self.proj = Conv2d(out_channels, out_channels, kernel=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        orig = x
        x = self.conv0(F.silu(self.norm0(x)))
        scale, shift = self.affine(emb).unsqueeze(2).unsqueeze(3).to(x.dtype).chunk(2, dim=1)
        x = F.silu(torch.addcmul(shift, self.norm1(x), scale + 1))
        x = self.conv1(x)
        x = x.add_(self.skip(orig) if self.skip is not None else orig)

        if self.num_heads:
            n, c, h, w = x.shape
            # The checkpoint interleaves q, k, v per channel within each head:
            # qkv channel (head * C/heads + j) * 3 + t, t in (q, k, v).
            q, k, v = self.qkv(self.norm2(x)).reshape(n * self.num_heads, c // self.num_heads, 3, h * w).unbind(2)
            scores = torch.einsum("ncq,nck->nqk", q.to(torch.float32),
                                  (k / math.sqrt(k.shape[1])).to(torch.float32))
            weights = scores.softmax(dim=2).to(q.dtype)
            a = torch.einsum("nqk,nck->ncq", weights, v)
            x = self.proj(a.reshape(n, c, h, w)).add_(x)
        return x


class DhariwalUNet(nn.Module):
    """ADM-style U-Net (EDM's "DhariwalUNet"), without augmentation conditioning or dropout.

    Returns the raw network output F; `EDMPrecond` turns it into the denoised image.
    Encoder blocks are named ``enc.{res}x{res}_conv|_down|_block{i}`` and decoder
    blocks ``dec.{res}x{res}_in0|_in1|_up|_block{i}``; every encoder output is a
    skip connection that a decoder block concatenates to its input.
    """

    def __init__(self, img_resolution: int, in_channels: int, out_channels: int, label_dim: int = 0,
                 model_channels: int = 192, channel_mult: Sequence[int] = (1, 2, 3, 4),
                 channel_mult_emb: int = 4, num_blocks: int = 3,
                 attn_resolutions: Sequence[int] = (32, 16, 8), channels_per_head: int = 64):
        super().__init__()
        emb_channels = model_channels * channel_mult_emb
        block: dict[str, Any] = dict(emb_channels=emb_channels, channels_per_head=channels_per_head)

        self.map_noise = PositionalEmbedding(model_channels)
        self.map_layer0 = Linear(model_channels, emb_channels)
        self.map_layer1 = Linear(emb_channels, emb_channels)
        self.map_label = Linear(label_dim, emb_channels, bias=False) if label_dim else None

        self.enc = nn.ModuleDict()
        cout = in_channels
        for level, mult in enumerate(channel_mult):
            res = img_resolution >> level
            if level == 0:
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_conv"] = Conv2d(cin, cout, kernel=3)
            else:
                self.enc[f"{res}x{res}_down"] = UNetBlock(cout, cout, down=True, **block)
            for idx in range(num_blocks):
                cin, cout = cout, model_channels * mult
                self.enc[f"{res}x{res}_block{idx}"] = UNetBlock(
                    cin, cout, attention=res in attn_resolutions, **block)
        skips: list[int] = [b.out_channels for b in self.enc.values()]  # type: ignore[misc]  # UNetBlock/Conv2d attributes, not Module lookups

        self.dec = nn.ModuleDict()
        for level, mult in reversed(list(enumerate(channel_mult))):
            res = img_resolution >> level
            if level == len(channel_mult) - 1:
                self.dec[f"{res}x{res}_in0"] = UNetBlock(cout, cout, attention=True, **block)
                self.dec[f"{res}x{res}_in1"] = UNetBlock(cout, cout, **block)
            else:
                self.dec[f"{res}x{res}_up"] = UNetBlock(cout, cout, up=True, **block)
            for idx in range(num_blocks + 1):
                cin, cout = cout + skips.pop(), model_channels * mult
                self.dec[f"{res}x{res}_block{idx}"] = UNetBlock(
                    cin, cout, attention=res in attn_resolutions, **block)
        self.out_norm = GroupNorm(cout)
        self.out_conv = Conv2d(cout, out_channels, kernel=3)

    def forward(self, x: torch.Tensor, noise_labels: torch.Tensor,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.map_noise(noise_labels)
        emb = F.silu(self.map_layer0(emb))
        emb = self.map_layer1(emb)
        if self.map_label is not None and class_labels is not None:
            emb = emb + self.map_label(class_labels)
        emb = F.silu(emb)

        skips = []
        for block in self.enc.values():
            x = block(x, emb) if isinstance(block, UNetBlock) else block(x)
            skips.append(x)
        for block in self.dec.values():
            # up/in blocks keep the channel count; the others take a skip connection.
            if x.shape[1] != block.in_channels:
                x = torch.cat([x, skips.pop()], dim=1)
            x = block(x, emb)
        return self.out_conv(F.silu(self.out_norm(x)))


class EDMPrecond(nn.Module):
    """EDM preconditioning: ``D(x, sigma) = c_skip x + c_out F(c_in x, ln(sigma)/4, labels)``.

    ``forward(x, sigma, class_labels)`` takes and returns float32 whatever the
    parameter dtype. The U-Net is ``self.model``, hence the ``model.`` prefix of
    every checkpoint key.
    """

    def __init__(self, img_resolution: int = 64, in_channels: int = 3, label_dim: int = 1000,
                 model_channels: int = 192, channel_mult: Sequence[int] = (1, 2, 3, 4),
                 channel_mult_emb: int = 4, num_blocks: int = 3,
                 attn_resolutions: Sequence[int] = (32, 16, 8), channels_per_head: int = 64,
                 sigma_data: float = 0.5, init_seed: int | None = 0):
        super().__init__()
        self.img_resolution = img_resolution
        self.in_channels = in_channels
        self.label_dim = label_dim
        self.sigma_data = sigma_data
        self.model = DhariwalUNet(
            img_resolution=img_resolution, in_channels=in_channels, out_channels=in_channels,
            label_dim=label_dim, model_channels=model_channels, channel_mult=tuple(channel_mult),
            channel_mult_emb=channel_mult_emb, num_blocks=num_blocks,
            attn_resolutions=tuple(attn_resolutions), channels_per_head=channels_per_head)
        if init_seed is not None:
            init_weights(self, init_seed)

    @property
    def dtype(self) -> torch.dtype:
        return self._out_weight().dtype

    @property
    def device(self) -> torch.device:
        return self._out_weight().device

    def _out_weight(self) -> torch.Tensor:
        weight = self.model.out_conv.weight
        assert weight is not None  # the output convolution always has a kernel
        return weight

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float,
                class_labels: torch.Tensor | None = None) -> torch.Tensor:
        x = x.to(torch.float32)
        sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1, 1, 1, 1)
        if self.label_dim:
            class_labels = (torch.zeros([1, self.label_dim], device=x.device) if class_labels is None
                            else class_labels.to(torch.float32).reshape(-1, self.label_dim))
        else:
            class_labels = None

        sd2 = self.sigma_data ** 2
        c_skip = sd2 / (sigma ** 2 + sd2)
        c_out = sigma * self.sigma_data / (sigma ** 2 + sd2).sqrt()
        c_in = 1 / (sd2 + sigma ** 2).sqrt()
        c_noise = sigma.log() / 4

        F_x = self.model((c_in * x).to(self.dtype), c_noise.flatten(), class_labels)
        return c_skip * x + c_out * F_x.to(torch.float32)


@torch.no_grad()
def init_weights(module: nn.Module, seed: int) -> None:
    """Fill every parameter deterministically from ``seed`` (same seed, same weights).

    Weights are uniform with variance 1/fan_in, biases uniform in +-1/sqrt(fan_in),
    norms identity. Unlike EDM training, the residual output convolutions are not
    zeroed: an untrained but non-degenerate network gives every block a
    non-trivial activation, which is what the random-weights mode exists for.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    for m in module.modules():
        if isinstance(m, (Linear, Conv2d)):
            if m.weight is None:
                continue
            fan_in = m.weight[0].numel()
            bound = math.sqrt(3 / fan_in)
            m.weight.uniform_(-bound, bound, generator=gen)
            if m.bias is not None:
                m.bias.uniform_(-1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in), generator=gen)
        elif isinstance(m, GroupNorm):
            m.weight.fill_(1)
            m.bias.zero_()
