"""Prompt wordings of the SFT tasks: YAML files in `prompts/` mapping a task to several paraphrases;
one is chosen deterministically by example id and filled with the example's values. Another folder of
the same form (simulate/prompts: the simulate service's own wordings) is read with `folder=`."""
from __future__ import annotations

import hashlib
import string
from functools import lru_cache
from pathlib import Path

import yaml

PROMPTS = Path(__file__).with_name("prompts")


class WordingError(ValueError):
    """A wording file is malformed or a template names a value the builder does not give."""


@lru_cache(maxsize=None)
def wordings(folder: Path = PROMPTS) -> dict[str, tuple[str, ...]]:
    """Every task's paraphrases, from all files in `folder` (a task defined twice is an error)."""
    out: dict[str, tuple[str, ...]] = {}
    origin: dict[str, str] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        for key, value in data.items():
            if key in out:
                raise WordingError(f"{path}: wording `{key}` is also defined in {origin[key]}")
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise WordingError(f"{path}: `{key}` must be a non-empty list of template strings")
            out[key], origin[key] = tuple(v.strip() for v in value), str(path)
    return out


def fields_of(template: str) -> set[str]:
    """The placeholder names a template uses."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def pick(key: str, example_id: str, folder: Path = PROMPTS) -> str:
    """The paraphrase of `key` used for one example (stable across runs)."""
    options = wordings(folder).get(key)
    if options is None:
        raise WordingError(f"no wording `{key}` in {folder}")
    return options[int(hashlib.sha1(f"{key}:{example_id}".encode()).hexdigest()[:8], 16) % len(options)]


def render(key: str, example_id: str, folder: Path = PROMPTS, **values: object) -> str:
    """Fill the example's paraphrase of `key`; a missing value is an error naming the wording."""
    template = pick(key, example_id, folder)
    missing = fields_of(template) - values.keys()
    if missing:
        raise WordingError(f"wording `{key}` in {folder} needs {sorted(missing)}; the builder gave {sorted(values)}")
    return template.format(**values)
