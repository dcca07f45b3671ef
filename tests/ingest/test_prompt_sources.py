"""ingest.t2i.prompts: the prompt sources of `generate-t2i` and their one-line errors."""
from __future__ import annotations

import pytest

from ingest.errors import InputError
from ingest.t2i.prompts import (
    PromptSpec,
    class_prompts,
    collect_prompts,
    read_csv_prompts,
    read_prompt_file,
    read_text_prompts,
)
from lake import imagenet_classes
from lake.layout import prompt_id


def test_text_file_skips_blank_lines_and_comments(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("# the demo prompts\n\n  a red fox in snow  \n#not this\na lighthouse at dusk\n\n")
    assert read_text_prompts(path) == [PromptSpec("a red fox in snow"), PromptSpec("a lighthouse at dusk")]
    assert read_prompt_file(path) == read_text_prompts(path)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\v", "\f", "\x1c", "\x1d", "\x1e"])
def test_text_file_splits_prompts_at_newlines_only(tmp_path, separator):
    # str.splitlines also splits at these; a prompt file's lines end at \n or \r\n only, as a .csv's rows do.
    path = tmp_path / "p.txt"
    path.write_bytes(f"a red fox{separator}in snow\r\n# a comment\r\na lighthouse\na red fox{separator}in snow\n".encode())
    fox = PromptSpec(f"a red fox{separator}in snow")
    assert read_text_prompts(path) == [fox, PromptSpec("a lighthouse"), fox]
    assert collect_prompts(path).duplicates == (f"{path}:4",)  # line numbers count \n lines


def test_csv_reads_negative_prompts_and_classes_by_id_wnid_or_name(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('Prompt,negative_prompt,class\n'
                    '"a cat, asleep",blurry,tabby\n'
                    'a fish,,n01443537\n'
                    '"two lines\nof prompt",,\n'
                    ',,\n'  # an empty row, as spreadsheets export: skipped
                    'a shark,low quality,2\n', encoding="utf-8")
    table = imagenet_classes()
    assert read_csv_prompts(path) == [
        PromptSpec("a cat, asleep", "blurry", table.resolve("tabby")),
        PromptSpec("a fish", "", 1),
        PromptSpec("two lines\nof prompt", "", -1),
        PromptSpec("a shark", "low quality", 2),
    ]
    # class_id is the other spelling of the class column
    (tmp_path / "q.csv").write_text("prompt,class_id\na goldfish,goldfish\n")
    assert read_csv_prompts(tmp_path / "q.csv") == [PromptSpec("a goldfish", "", 1)]


@pytest.mark.parametrize(("name", "text", "says"), [
    ("missing.txt", None, "no such prompt file"),
    ("p.json", "[]", "unknown prompt file type '.json'"),
    ("empty.txt", "\n# only a comment\n\n", "no prompts"),
    ("empty.csv", "", "empty file"),
    ("header.csv", "prompt,class\n", "no prompts"),
    ("nocol.csv", "text,class\nhello,1\n", "line 1: no 'prompt' column"),
    ("blank.csv", "prompt,negative_prompt\nfine,\n\"\",blurry\n", "line 3: empty prompt"),
    ("class.csv", "prompt,class\nfine,tabby\nbad,not-a-class\n", "line 3: column class: unknown class 'not-a-class'"),
    ("binary.txt", b"\xff\xfe\x00bad", "not UTF-8"),
])
def test_bad_prompt_files_are_one_line_errors_naming_the_file(tmp_path, name, text, says):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(InputError) as info:
        read_prompt_file(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and says in message


def test_unreadable_prompt_file_is_an_input_error(tmp_path):
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    with pytest.raises(InputError, match="not a file"):
        read_prompt_file(folder)


def test_class_prompts_fill_the_template_and_keep_the_class():
    table = imagenet_classes()
    shark = table.resolve("great_white_shark")
    assert class_prompts("goldfish, n01484850,1") == [PromptSpec("a photo of a goldfish", "", 1),
                                                      PromptSpec("a photo of a great white shark", "", shark)]
    assert class_prompts(["tabby"], "{name}, oil painting") == [PromptSpec("tabby, oil painting", "", table.resolve("tabby"))]
    with pytest.raises(InputError, match="--prompts-from-classes: unknown class 'unicorn'"):
        class_prompts("goldfish,unicorn")
    with pytest.raises(InputError, match="--prompt-template must contain"):
        class_prompts("goldfish", "a photo")
    with pytest.raises(InputError, match="no class given"):
        class_prompts(" , ")


def test_collect_orders_sources_applies_the_negative_prompt_and_drops_repeats(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("prompt,negative_prompt\na fox,\na fox,\na owl,its own negative\na photo of a goldfish,\n")
    found = collect_prompts(path, ["a fox", "a moth"], "goldfish,tabby", negative_prompt="blurry")
    assert [(p.prompt, p.negative_prompt, p.class_id) for p in found.prompts] == [
        ("a fox", "blurry", -1),
        ("a owl", "its own negative", -1),  # a CSV's own negative prompt wins
        ("a photo of a goldfish", "blurry", -1),  # the first occurrence (the file's, without a class) is kept
        ("a moth", "blurry", -1),
        ("a photo of a tabby", "blurry", imagenet_classes().resolve("tabby")),
    ]
    assert found.duplicates == (f"{path}:3", "--prompt #1", "--prompts-from-classes #1")
    note = found.note()
    assert note is not None and note.startswith("note: 3 repeated prompt(s) skipped") and "\n" not in note
    assert [p.prompt_id for p in found.prompts] == [prompt_id(p.prompt, p.negative_prompt) for p in found.prompts]
    # Another negative prompt is another prompt: not a repeat.
    assert len(collect_prompts(prompts=["a fox"], negative_prompt="").prompts) == 1
    assert collect_prompts(prompts=["a fox"]).note() is None


def test_collect_refuses_no_prompts_and_empty_prompts():
    with pytest.raises(InputError, match="no prompts: give --prompts FILE"):
        collect_prompts()
    with pytest.raises(InputError, match="--prompt: empty prompt"):
        collect_prompts(prompts=["fine", "  "])
