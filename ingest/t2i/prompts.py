"""Prompt sources of `python -m ingest generate-t2i`: plain functions that turn a prompt file, `--prompt`
flags or a list of ImageNet classes into typed `PromptSpec` records.

- a text file (``.txt``): one prompt per line; blank lines and lines starting with ``#`` are skipped;
- a CSV file (``.csv``): a header row with a ``prompt`` column, optional ``negative_prompt`` and
  ``class_id`` (or ``class``: an id, wnid or name, as `lake.classes.ClassTable.resolve` reads them);
- ``--prompt TEXT`` (repeatable);
- ``--prompts-from-classes LIST``: ``--prompt-template`` (default ``"a photo of a {name}"``) over
  the chosen ImageNet classes, keeping each prompt's class id so text-to-image samples line up
  with the ImageNet lake's classes.

`collect_prompts` puts the sources together (file, then ``--prompt``, then classes), applies
``--negative-prompt`` and drops repeated prompts (same prompt and negative prompt, hence the same
`lake.layout.prompt_id`), keeping the first. Every problem is an `InputError` of one line naming
the file and line (or the flag).
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..options import parse_class_list

DEFAULT_TEMPLATE = "a photo of a {name}"
PROMPT_FILE_SUFFIXES = (".txt", ".csv")
NO_CLASS = -1


@dataclass(frozen=True)
class PromptSpec:
    """One prompt to generate from: its text, negative prompt ('' for none) and ImageNet class (-1 for none)."""

    prompt: str
    negative_prompt: str = ""
    class_id: int = NO_CLASS

    @property
    def prompt_id(self) -> str:
        """The prompt's stable id (`lake.layout.prompt_id` of prompt and negative prompt)."""
        from lake.layout import prompt_id

        return prompt_id(self.prompt, self.negative_prompt)


@dataclass(frozen=True)
class PromptList:
    """The distinct prompts of a run, in order, and where the repeats that were dropped came from."""

    prompts: tuple[PromptSpec, ...]
    duplicates: tuple[str, ...] = field(default_factory=tuple)  # where each dropped repeat was given

    def note(self) -> str | None:
        """A one-line note about dropped repeats (None when there were none)."""
        if not self.duplicates:
            return None
        shown = ", ".join(self.duplicates[:3]) + (", ..." if len(self.duplicates) > 3 else "")
        return (f"note: {len(self.duplicates)} repeated prompt(s) skipped (same prompt and negative prompt as an "
                f"earlier one, so the same prompt_id): {shown}")


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, a BOM allowed); unreadable or undecodable files are one-line InputErrors."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read prompt file ({exc.strerror or exc})") from None


def read_text_prompts(path: str | os.PathLike[str]) -> list[PromptSpec]:
    """Prompts of a text file, one per line (stripped); blank lines and ``#`` comments are skipped."""
    return [spec for spec, _ in _text_prompts(Path(path))]


def _text_prompts(path: Path) -> list[tuple[PromptSpec, int]]:
    """`read_text_prompts` with each prompt's line number (lines end at \\n or \\r\\n)."""
    # Not str.splitlines: it also ends a line at U+2028/U+2029, U+0085, \v, \f and \x1c-\x1e, which would
    # silently cut one prompt in two (and a .csv row keeps them).
    lines = _read_text(path).split("\n")
    prompts = [(PromptSpec(line.strip()), number) for number, line in enumerate(lines, start=1)
               if line.strip() and not line.strip().startswith("#")]
    if not prompts:
        raise InputError(f"{path}: no prompts (every line is blank or a # comment)")
    return prompts


def read_csv_prompts(path: str | os.PathLike[str]) -> list[PromptSpec]:
    """Prompts of a CSV file with a header row: ``prompt`` (required), ``negative_prompt``, ``class_id``/``class``."""
    return [spec for spec, _ in _csv_prompts(Path(path))]


def _csv_prompts(path: Path) -> list[tuple[PromptSpec, int]]:
    """`read_csv_prompts` with each prompt's line number."""
    from lake.classes import imagenet_classes

    text = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))  # newline="": quoted fields may span lines
    try:
        header = [name.strip().lower() for name in reader.fieldnames or []]
    except csv.Error as exc:
        raise InputError(f"{path}: line 1: not a CSV header ({exc})") from None
    if not header:
        raise InputError(f"{path}: empty file (expected a header row with a 'prompt' column)")
    if "prompt" not in header:
        raise InputError(f"{path}: line 1: no 'prompt' column in the header (found: {', '.join(header) or 'nothing'})")
    reader.fieldnames = header
    class_column = "class_id" if "class_id" in header else "class" if "class" in header else None
    table = imagenet_classes()
    prompts = []
    try:
        for row in reader:
            line = reader.line_num
            if all(not (value or "").strip() for value in row.values() if isinstance(value, str)):
                continue  # a row with nothing in it (spreadsheets export trailing ",,," rows)
            prompt = (row.get("prompt") or "").strip()
            if not prompt:
                raise InputError(f"{path}: line {line}: empty prompt")
            class_id = NO_CLASS
            token = (row.get(class_column) or "").strip() if class_column else ""
            if token and token != str(NO_CLASS):
                try:
                    class_id = table.resolve(token)
                except ValueError as exc:
                    raise InputError(f"{path}: line {line}: column {class_column}: {exc}") from None
            prompts.append((PromptSpec(prompt, (row.get("negative_prompt") or "").strip(), class_id), line))
    except csv.Error as exc:
        raise InputError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    if not prompts:
        raise InputError(f"{path}: no prompts (the CSV has a header but no rows)")
    return prompts


def read_prompt_file(path: str | os.PathLike[str]) -> list[PromptSpec]:
    """Prompts of a ``.txt`` or ``.csv`` file (`read_text_prompts`, `read_csv_prompts`)."""
    return [spec for spec, _ in _file_prompts(Path(path))]


def _file_prompts(path: Path) -> list[tuple[PromptSpec, int]]:
    """`read_prompt_file` with each prompt's line number."""
    suffix = path.suffix.lower()
    if suffix not in PROMPT_FILE_SUFFIXES:
        raise InputError(f"{path}: unknown prompt file type {suffix or '(none)'!r}; use .txt (one prompt per line) "
                         "or .csv (a 'prompt' column)")
    if not path.is_file():
        raise InputError(f"{path}: no such prompt file" if not path.exists() else f"{path}: not a file")
    return _text_prompts(path) if suffix == ".txt" else _csv_prompts(path)


def class_name_for_prompt(class_id: int) -> str:
    """The class's name as a prompt says it: the class table's name with spaces (``great white shark``)."""
    from lake.classes import imagenet_classes

    return imagenet_classes().names[class_id].replace("_", " ")


def class_prompts(classes: str | Sequence[int | str], template: str = DEFAULT_TEMPLATE) -> list[PromptSpec]:
    """One prompt per class (comma-separated or a list of ids, wnids or names), `template` with ``{name}``
    filled in, keeping the class id. Repeated classes count once."""
    if "{name}" not in template:
        raise InputError(f"--prompt-template must contain {{name}} (e.g. {DEFAULT_TEMPLATE!r}), got {template!r}")
    try:
        chosen = parse_class_list(classes)  # the --classes reader of `ingest generate`: same tokens, same errors
    except InputError as exc:
        raise InputError(str(exc).replace("--classes", "--prompts-from-classes", 1)) from None
    if not chosen:
        raise InputError("--prompts-from-classes: no class given (ids, wnids or names, comma-separated)")
    # str.replace, not str.format: a template may hold other braces ("{name}, {style}" stays literal).
    return [PromptSpec(template.replace("{name}", class_name_for_prompt(c)).strip(), class_id=c) for c in chosen]


def collect_prompts(prompts_file: str | os.PathLike[str] | None = None, prompts: Sequence[str] = (),
                    from_classes: str | Sequence[int | str] | None = None, template: str = DEFAULT_TEMPLATE,
                    negative_prompt: str | None = None) -> PromptList:
    """The run's distinct prompts: `prompts_file`, then each of `prompts`, then `from_classes`, in that order.

    `negative_prompt` applies to every prompt that has none of its own (a CSV's
    ``negative_prompt`` column wins). Repeats of a (prompt, negative prompt) pair are dropped,
    the first kept (`PromptList.note` says where the others were). InputError when no source
    is given, a source is empty, or a prompt is empty.
    """
    sourced: list[tuple[PromptSpec, str]] = []  # each prompt and where it was given (for the duplicates note)
    if prompts_file is not None:
        sourced += [(spec, f"{prompts_file}:{line}") for spec, line in _file_prompts(Path(prompts_file))]
    for i, text in enumerate(prompts):
        if not text.strip():
            raise InputError(f"--prompt: empty prompt (occurrence {i + 1}); give some text")
        sourced.append((PromptSpec(text.strip()), f"--prompt #{i + 1}"))
    if from_classes is not None:
        sourced += [(spec, f"--prompts-from-classes #{i + 1}") for i, spec in enumerate(class_prompts(from_classes, template))]
    if not sourced:
        raise InputError("no prompts: give --prompts FILE, --prompt TEXT or --prompts-from-classes LIST")
    negative = (negative_prompt or "").strip()
    seen: set[str] = set()
    kept: list[PromptSpec] = []
    duplicates: list[str] = []
    for spec, where in sourced:
        if negative and not spec.negative_prompt:
            spec = PromptSpec(spec.prompt, negative, spec.class_id)
        if spec.prompt_id in seen:
            duplicates.append(where)
            continue
        seen.add(spec.prompt_id)
        kept.append(spec)
    return PromptList(tuple(kept), tuple(duplicates))
