"""The real CLIP BPE vocabulary, offline: open-clip's ``bpe_simple_vocab_16e6.txt.gz`` to
the ``vocab.json`` + ``merges.txt`` pair that transformers' ``CLIPTokenizer`` reads.

``make setup`` downloads the pinned open-clip-torch wheel without installing it (the
package needs torchvision, which never goes into our environment) and extracts only the
BPE file to ``.venv/share/dmd2viz/``. Users' real base folders ship their own tokenizer
folders; this is what the tiny components (tests, demo, benchmarks) use.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

BPE_NAME = "bpe_simple_vocab_16e6.txt.gz"
ENV_VAR = "DMD2VIZ_CLIP_BPE"
# open_clip's SimpleTokenizer keeps the first 49152 - 256 - 2 merges (after the version line).
N_MERGES = 49152 - 256 - 2
VOCAB_SIZE = 49408
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def clip_bpe_path() -> Path:
    """Path of the CLIP BPE file: env ``DMD2VIZ_CLIP_BPE``, else ``<venv>/share/dmd2viz/`` (``make setup``).

    Raises FileNotFoundError naming the path and ``make setup`` when it is missing.
    """
    env = os.environ.get(ENV_VAR)
    path = Path(env) if env else Path(sys.prefix) / "share" / "dmd2viz" / BPE_NAME
    if not path.is_file():
        source = f"${ENV_VAR}" if env else "make setup"
        raise FileNotFoundError(f"CLIP BPE vocabulary not found at {path}; run `make setup` "
                                f"(it extracts {BPE_NAME} from the pinned open-clip-torch wheel) "
                                f"or point ${ENV_VAR} at the file (looked via {source})")
    return path


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's byte -> printable character table (the same one GPT-2 and open_clip use)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """Token -> id in open_clip's order: bytes, bytes + ``</w>``, each merge, then BOS and EOS."""
    base = list(bytes_to_unicode().values())
    tokens = base + [v + "</w>" for v in base] + ["".join(m) for m in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(tokens)}


def read_merges(gz: str | Path) -> list[tuple[str, str]]:
    """The merges of an open_clip BPE file (gzip text, a version line, then one pair per line)."""
    try:
        lines = gzip.open(gz, "rt", encoding="utf-8").read().split("\n")
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read CLIP BPE file {gz}: {e}") from e
    pairs = [tuple(line.split()) for line in lines[1:N_MERGES + 1]]
    if len(pairs) != N_MERGES or any(len(p) != 2 for p in pairs):
        raise ValueError(f"{gz} is not open_clip's BPE file: expected {N_MERGES} merge pairs")
    return pairs  # type: ignore[return-value]


def convert_clip_bpe(gz: str | Path, out_dir: str | Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` for ``CLIPTokenizer`` from open_clip's BPE file; returns out_dir."""
    merges = read_merges(gz)
    vocab = clip_vocab(merges)
    assert len(vocab) == VOCAB_SIZE, len(vocab)  # the table and the merges are disjoint by construction
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n",
                                    encoding="utf-8")
    return out


def write_clip_tokenizer(out_dir: str | Path, pad_token: str = EOS, gz: str | Path | None = None) -> Path:
    """A complete CLIP tokenizer folder (vocab, merges, configs) as SD/SDXL base folders ship it.

    ``pad_token``: ``<|endoftext|>`` for SD's first tokenizer, ``!`` for SDXL's ``tokenizer_2``.
    """
    out = convert_clip_bpe(gz if gz is not None else clip_bpe_path(), out_dir)
    config = {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True,
              "bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token,
              "clean_up_tokenization_spaces": True, "errors": "replace", "add_prefix_space": False}
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    return out
