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
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator, StringConstraints, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails, PydanticCustomError

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

Level = Literal["tag", "user", "post", "judge"]
Format = Literal["text", "xml", "json"]
# The template variables each level may use (a typo such as {Post} fails at load, not mid-run).
LEVEL_VARIABLES: dict[str, frozenset[str]] = {
    "tag": frozenset({"platform", "post", "date", "parent"}),
    "user": frozenset({"platform"}),
    "post": frozenset({"platform", "post", "date", "pseudonym"}),
    "judge": frozenset({"source", "sample", "kind"}),
}
Name = Annotated[str, StringConstraints(strict=True, min_length=1)]
PositiveInt = Annotated[int, Field(strict=True, gt=0)]


def _invalid(key: str, why: str) -> PydanticCustomError:
    """A spec error about `key` (raised by the validators; _explain turns it into the message)."""
    return PydanticCustomError("prompt_spec", "{why}", {"key": key, "why": why})


class KindSpec(BaseModel):
    """One generation kind, as loaded from its YAML file: the field types check each key, the
    validators check the keys against each other (and `kind` against the file name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Name
    level: Level
    format: Format
    instruction: Annotated[str, Field(strict=True)]
    max_tokens: PositiveInt
    tags: tuple[Name, ...] = ()
    optional_tags: tuple[Name, ...] = ()
    json_schema: dict | None = None
    allow_null: Annotated[bool, Field(strict=True)] = False
    min_words: PositiveInt | None = None
    max_words: PositiveInt | None = None
    judge: Name | None = None  # the kind that judges this one
    dims: tuple[Name, ...] = ()  # a judge's rubric dimensions

    @property
    def variables(self) -> frozenset[str]:
        """Names of the `{placeholders}` in the instruction."""
        return _placeholders(self.instruction)

    @field_validator("tags", "optional_tags", "dims", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return () if value is None else value

    @field_validator("kind")
    @classmethod
    def _kind_is_file_name(cls, kind: str, info: ValidationInfo) -> str:
        stem = (info.context or {}).get("stem")
        if stem is not None and kind != stem:
            raise _invalid("kind", f"{kind!r} does not match the file name {stem!r}")
        return kind

    @field_validator("instruction")
    @classmethod
    def _instruction_is_a_template(cls, instruction: str) -> str:
        if not instruction.strip():
            raise _invalid("instruction", "must be a non-empty string")
        try:
            _placeholders(instruction)
        except ValueError as e:  # unbalanced braces, e.g. an undoubled brace in a JSON example
            raise _invalid("instruction", f"bad template ({e}); double literal braces: {{{{ }}}}") from None
        return instruction.strip()

    @model_validator(mode="after")
    def _consistent(self) -> KindSpec:
        allowed = LEVEL_VARIABLES[self.level]
        unexpected = sorted(self.variables - allowed)
        if unexpected:
            raise _invalid("instruction", f"placeholder {{{unexpected[0]}}} not allowed at level {self.level!r} "
                                          f"(allowed: {', '.join(sorted(allowed))})")
        self._check_format()
        if self.min_words and self.max_words and self.min_words > self.max_words:
            raise _invalid("min_words", "greater than max_words")
        if self.format == "json" and (self.min_words or self.max_words):
            raise _invalid("min_words" if self.min_words else "max_words", "word bounds apply to text or xml kinds")
        self._check_judge()
        return self

    def _check_format(self) -> None:
        """Tags belong to xml kinds, a schema to json kinds."""
        fmt = self.format
        if fmt == "xml" and not self.tags:
            raise _invalid("tags", "an xml kind needs at least one required tag")
        if fmt != "xml" and (self.tags or self.optional_tags):
            raise _invalid("tags" if self.tags else "optional_tags", f"only xml kinds have tags, this one is {fmt}")
        if set(self.tags) & set(self.optional_tags):
            raise _invalid("optional_tags", "a tag cannot be both required and optional")
        if fmt == "json" and self.json_schema is None:
            raise _invalid("json_schema", "a json kind needs a JSON schema (a mapping)")
        if fmt != "json" and self.json_schema is not None:
            raise _invalid("json_schema", f"only json kinds have a schema, this one is {fmt}")

    def _check_judge(self) -> None:
        """A judge kind answers in json with one required property per rubric dimension, and is not judged."""
        if self.level != "judge":
            if self.dims:
                raise _invalid("dims", "only judge kinds have dims")
            return
        if self.judge is not None:
            raise _invalid("judge", "a judge kind is not judged itself")
        if not self.dims:
            raise _invalid("dims", "a judge kind needs a list of rubric dimensions")
        if self.format != "json":
            raise _invalid("format", "judge kinds answer in json")
        props = self.json_schema.get("properties") or {}
        required = set(self.json_schema.get("required") or [])
        missing = [d for d in self.dims if d not in props or d not in required]
        if missing:
            raise _invalid("json_schema", f"dimension {missing[0]!r} must be a required property")


def _placeholders(template: str) -> frozenset[str]:
    names = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            names.add(field.split(".", 1)[0].split("[", 1)[0])
    return frozenset(names)


def _explain(path: Path, err: ErrorDetails) -> str:
    """One validation error as `<file>: key '<key>': <what is wrong>`."""
    key, kind = str(err["loc"][0]) if err["loc"] else "", err["type"]
    if kind == "prompt_spec":
        key, why = err["ctx"]["key"], err["msg"]
    elif kind == "extra_forbidden":
        why = f"unknown key (known: {', '.join(sorted(KindSpec.model_fields))})"
    elif kind == "missing":
        why = "missing"
    else:
        msg = "input should be a list" if kind == "tuple_type" else err["msg"][0].lower() + err["msg"][1:]
        item = f" (item {err['loc'][1]})" if len(err["loc"]) > 1 else ""
        why = f"{msg}{item}, got {err['input']!r}"
    return f"{path.name}: key {key!r}: {why}"


def _validate(path: Path, raw: Any) -> KindSpec:
    """Check one parsed YAML file; the first problem is a ValueError naming the file and the key."""
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: expected a mapping at top level, got {type(raw).__name__}")
    try:
        return KindSpec.model_validate(raw, context={"stem": path.stem})
    except ValidationError as e:
        # One problem: the first unknown key (by name), else the first missing key, else the first bad value.
        rank = {"extra_forbidden": 0, "missing": 1}
        first = min(e.errors(), key=lambda r: (rank.get(r["type"], 2), str(r["loc"]) if r["type"] == "extra_forbidden"
                                               else ""))
        raise ValueError(_explain(path, first)) from None


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
