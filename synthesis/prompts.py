"""Prompt templates for every synthesis kind: load, validate and fill `synthesis/prompts/<kind>.yaml`.

Each kind is one YAML file (prompts are data). A request is two messages: a shared system message
(`prompts/system.txt`, or `prompts/judge_system.txt` for judges) and a user message. For user- and
post-level kinds the caller passes the user's history, which goes first in the user message so that
every request about one user shares the same prefix (prefix caching); the filled instruction follows.
"""
from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

LEVELS = ("tag", "user", "post", "judge")
FORMATS = ("text", "xml", "json")
# The template variables each level may use (a typo such as {Post} fails at load, not mid-run).
LEVEL_VARIABLES: dict[str, frozenset[str]] = {
    "tag": frozenset({"platform", "post", "date", "parent"}),
    "user": frozenset({"platform"}),
    "post": frozenset({"platform", "post", "date", "pseudonym"}),
    "judge": frozenset({"source", "sample", "kind"}),
}
_KEYS = frozenset({
    "kind", "level", "format", "tags", "optional_tags", "json_schema", "max_tokens", "allow_null",
    "min_words", "max_words", "judge", "instruction", "dims",
})
_REQUIRED_KEYS = ("kind", "level", "format", "instruction", "max_tokens")


@dataclass(frozen=True)
class KindSpec:
    """One generation kind, as loaded from its YAML file."""

    kind: str
    level: str
    format: str
    instruction: str
    max_tokens: int
    tags: tuple[str, ...] = ()
    optional_tags: tuple[str, ...] = ()
    json_schema: dict | None = None
    allow_null: bool = False
    min_words: int | None = None
    max_words: int | None = None
    judge: str | None = None
    dims: tuple[str, ...] = ()

    @property
    def variables(self) -> frozenset[str]:
        """Names of the `{placeholders}` in the instruction."""
        return _placeholders(self.instruction)


def _placeholders(template: str) -> frozenset[str]:
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            names.add(field.split(".", 1)[0].split("[", 1)[0])
    return frozenset(names)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _validate(path: Path, raw: Any) -> KindSpec:
    """Check one parsed YAML file; every problem is a ValueError naming the file and the key."""

    def bad(key: str, why: str) -> ValueError:
        return ValueError(f"{path.name}: key {key!r}: {why}")

    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: expected a mapping at top level, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise bad(unknown[0], f"unknown key (known: {', '.join(sorted(_KEYS))})")
    for key in _REQUIRED_KEYS:
        if key not in raw:
            raise bad(key, "missing")

    kind, level, fmt = raw["kind"], raw["level"], raw["format"]
    if kind != path.stem:
        raise bad("kind", f"{kind!r} does not match the file name {path.stem!r}")
    if level not in LEVELS:
        raise bad("level", f"{level!r} not in {'|'.join(LEVELS)}")
    if fmt not in FORMATS:
        raise bad("format", f"{fmt!r} not in {'|'.join(FORMATS)}")

    instruction = raw["instruction"]
    if not isinstance(instruction, str) or not instruction.strip():
        raise bad("instruction", "must be a non-empty string")
    try:
        names = _placeholders(instruction)
    except ValueError as e:  # unbalanced braces, e.g. an undoubled brace in a JSON example
        raise bad("instruction", f"bad template ({e}); double literal braces: {{{{ }}}}") from None
    unexpected = sorted(names - LEVEL_VARIABLES[level])
    if unexpected:
        raise bad("instruction", f"placeholder {{{unexpected[0]}}} not allowed at level {level!r} "
                                 f"(allowed: {', '.join(sorted(LEVEL_VARIABLES[level]))})")

    max_tokens = raw["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
        raise bad("max_tokens", f"must be a positive integer, got {max_tokens!r}")

    tags = raw.get("tags") or []
    optional = raw.get("optional_tags") or []
    for key, value in (("tags", tags), ("optional_tags", optional)):
        if not _is_str_list(value):
            raise bad(key, "must be a list of tag names")
    if fmt == "xml" and not tags:
        raise bad("tags", "an xml kind needs at least one required tag")
    if fmt != "xml" and (tags or optional):
        raise bad("tags" if tags else "optional_tags", f"only xml kinds have tags, this one is {fmt}")
    if set(tags) & set(optional):
        raise bad("optional_tags", "a tag cannot be both required and optional")

    schema = raw.get("json_schema")
    if fmt == "json" and not isinstance(schema, dict):
        raise bad("json_schema", "a json kind needs a JSON schema (a mapping)")
    if fmt != "json" and schema is not None:
        raise bad("json_schema", f"only json kinds have a schema, this one is {fmt}")

    allow_null = raw.get("allow_null", False)
    if not isinstance(allow_null, bool):
        raise bad("allow_null", f"must be true or false, got {allow_null!r}")

    bounds = {}
    for key in ("min_words", "max_words"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise bad(key, f"must be a positive integer, got {value!r}")
        bounds[key] = value
    if bounds["min_words"] and bounds["max_words"] and bounds["min_words"] > bounds["max_words"]:
        raise bad("min_words", "greater than max_words")
    if fmt == "json" and (bounds["min_words"] or bounds["max_words"]):
        raise bad("min_words" if bounds["min_words"] else "max_words", "word bounds apply to text or xml kinds")

    judge = raw.get("judge")
    if judge is not None and (not isinstance(judge, str) or not judge):
        raise bad("judge", f"must be a kind name or null, got {judge!r}")
    if level == "judge" and judge is not None:
        raise bad("judge", "a judge kind is not judged itself")

    dims = raw.get("dims") or []
    if level == "judge":
        if not dims or not _is_str_list(dims):
            raise bad("dims", "a judge kind needs a list of rubric dimensions")
        if fmt != "json":
            raise bad("format", "judge kinds answer in json")
        props = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        missing = [d for d in dims if d not in props or d not in required]
        if missing:
            raise bad("json_schema", f"dimension {missing[0]!r} must be a required property")
    elif dims:
        raise bad("dims", "only judge kinds have dims")

    return KindSpec(
        kind=kind, level=level, format=fmt, instruction=instruction.strip(), max_tokens=max_tokens,
        tags=tuple(tags), optional_tags=tuple(optional), json_schema=schema, allow_null=allow_null,
        min_words=bounds["min_words"], max_words=bounds["max_words"], judge=judge, dims=tuple(dims),
    )


def all_kinds() -> list[str]:
    """Every kind that has a YAML file, sorted."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.yaml"))


@lru_cache(maxsize=None)
def load_spec(kind: str) -> KindSpec:
    """The validated spec of one kind (cached); KeyError for an unknown kind."""
    known = all_kinds()
    if kind not in known:
        raise KeyError(f"unknown synthesis kind {kind!r}; known kinds: {', '.join(known)}")
    path = PROMPTS_DIR / f"{kind}.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path.name}: invalid YAML: {e}") from None
    return _validate(path, raw)


@lru_cache(maxsize=2)
def system_prompt(judge: bool = False) -> str:
    """The shared system message: one for every synthesis request, another for every judge request."""
    name = "judge_system.txt" if judge else "system.txt"
    return (PROMPTS_DIR / name).read_text(encoding="utf-8").strip()


def prompt_hash(messages: list[dict]) -> str:
    """A stable 16-hex-digit id of a request's messages (sha256 of their sorted-key JSON)."""
    blob = json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def build_messages(spec: KindSpec, *, history: str | None = None, **variables: Any) -> list[dict]:
    """The chat messages of one request: the system message, then history (if any) and the filled instruction.

    Variables the instruction does not use are ignored; a missing one (or one given as None) is a
    ValueError naming the kind, what is missing and what was given.
    """
    needed = spec.variables
    given = {k for k, v in variables.items() if v is not None}
    missing = sorted(needed - given)
    if missing:
        raise ValueError(
            f"{spec.kind}: missing template variable(s) {', '.join(missing)}; "
            f"given: {', '.join(sorted(given)) or 'none'}; the template uses: {', '.join(sorted(needed))}"
        )
    body = spec.instruction.format(**{k: variables[k] for k in needed})
    return [
        {"role": "system", "content": system_prompt(spec.level == "judge")},
        {"role": "user", "content": (history + "\n\n" if history else "") + body},
    ]


# Closed vocabularies of XML tags; any other tag holds free text without "<".
XML_CHOICES = {"quality": "(high|medium|low)", "harmless": "(yes|no)"}
XML_TEXT = "[^<]*[A-Za-z][^<]*"  # free text with at least one letter (a bare "..." placeholder is not an answer)


def xml_regex(spec: KindSpec) -> str:
    """A regular expression for the XML form of a kind (its tags in order, optional <data> wrapper,
    or NULL where allowed): the engine constrains decoding to it, so the format always parses."""
    body = r"\n?".join(f"<{t}>{XML_CHOICES.get(t, XML_TEXT)}</{t}>" for t in spec.tags)
    wrapped = rf"(<data>\n?)?{body}(\n?</data>)?" if "<data>" in spec.instruction else body
    return f"(NULL|{wrapped})" if spec.allow_null else wrapped


def structured_output(spec: KindSpec) -> dict | None:
    """The structured-output request of a kind: {"json": schema} for json kinds, {"regex": ...} for
    xml kinds, None for free text."""
    if spec.format == "json":
        return {"json": spec.json_schema}
    if spec.format == "xml":
        return {"regex": xml_regex(spec)}
    return None
