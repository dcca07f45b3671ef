"""The real CLIP tokenizer, offline: open-clip's BPE file converted to vocab.json + merges.txt."""

from __future__ import annotations

import gzip

import pytest

from models.t2i import clip_bpe_path, convert_clip_bpe
from models.t2i.clip_vocab import ENV_VAR, VOCAB_SIZE

CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]


@pytest.fixture(scope="module")
def vocab_dir(tmp_path_factory):
    return convert_clip_bpe(clip_bpe_path(), tmp_path_factory.mktemp("clip"))


@pytest.mark.parametrize("fast", [False, True])
def test_converted_vocabulary_is_the_real_clip_tokenizer(vocab_dir, fast):
    from transformers import CLIPTokenizer, CLIPTokenizerFast

    cls = CLIPTokenizerFast if fast else CLIPTokenizer
    tok = cls.from_pretrained(vocab_dir, local_files_only=True)
    assert len(tok) == VOCAB_SIZE == 49408
    assert tok("a photo of a cat").input_ids == CAT_IDS
    # Case, punctuation and a word outside the merges still tokenize like CLIP (lower-cased, byte fallback).
    assert tok("A Photo of a CAT").input_ids == CAT_IDS
    ids = tok("a photo of a zyxqw, please!").input_ids
    assert ids[0] == 49406 and ids[-1] == 49407 and len(ids) > 8
    assert tok.decode(ids, skip_special_tokens=True).strip() == "a photo of a zyxqw , please !"


def test_clip_bpe_path_honours_the_environment(tmp_path, monkeypatch):
    real = clip_bpe_path()
    monkeypatch.setenv(ENV_VAR, str(real))
    assert clip_bpe_path() == real
    missing = tmp_path / "nowhere.txt.gz"
    monkeypatch.setenv(ENV_VAR, str(missing))
    with pytest.raises(FileNotFoundError) as err:
        clip_bpe_path()
    assert str(missing) in str(err.value) and "make setup" in str(err.value)


def test_a_file_that_is_not_the_bpe_file_is_refused(tmp_path):
    bad = tmp_path / "bpe.txt.gz"
    with gzip.open(bad, "wt") as f:
        f.write("#version\na b\nc d\n")
    with pytest.raises(ValueError, match="bpe.txt.gz"):
        convert_clip_bpe(bad, tmp_path / "out")
    not_gzip = tmp_path / "plain.txt.gz"
    not_gzip.write_text("hello")
    with pytest.raises(ValueError, match="plain.txt.gz"):
        convert_clip_bpe(not_gzip, tmp_path / "out")
