"""Turn raw model output into typed fields for every synthesis kind, or say why it cannot be used.

Tolerated: ``` fences, a leading label ("Persona:"), a chatty first line ("Here is the persona:") or last
line ("(Word count: 92)") around a text answer, prose around XML or JSON, tags in any case or order,
a missing closing tag on the last tag (truncated output: the text runs to the end), HTML entities,
whitespace at the ends. A NULL answer ("NULL", "None", `<data>NULL</data>`, a NULL inside a required
tag, `[]` or `null` for a JSON list) is ok on a kind with allow_null, and an error otherwise.

Fields per kind:
- text kinds: {"text"}
- xml kinds: one field per tag (optional tags only when present)
- tag_v1, tag_v1_comment: {"rewrite": str, "quality": "high"|"medium"|"low", "harmless": bool}
- tag_v2: {"unsafe": bool, "social": bool, "rewrite_v2": str}
- stories: {"stories": [{"summary": str, "content": str}, ...]} (at most 20: the first 20 are kept;
  a truncated array keeps its complete stories)
- judge kinds: {"scores": {dim: int 1..10}, "explanation": str}
"""
from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from synthesis.prompts import KindSpec

MAX_STORIES = 20
_QUALITY = ("high", "medium", "low")


@dataclass(frozen=True)
class Parsed:
    """The outcome of parsing one output."""

    ok: bool  # usable output (a NULL answer on an allow_null kind is ok=True, null=True)
    null: bool
    fields: dict  # typed fields ({} when null or failed)
    error: str  # "" when ok; otherwise a short human reason


def _fail(error: str) -> Parsed:
    return Parsed(ok=False, null=False, fields={}, error=error)


def _good(fields: dict) -> Parsed:
    return Parsed(ok=True, null=False, fields=fields, error="")


def _null(spec: KindSpec) -> Parsed:
    return Parsed(ok=True, null=True, fields={}, error="") if spec.allow_null else _fail("NULL answer")


# --------------------------------------------------------------------------------------- common
_FENCE_LINE = re.compile(r"^[ \t]*```[\w+-]*[ \t]*$", re.M)
_FENCE_ENDS = re.compile(r"^```[\w+-]*[ \t]*|[ \t]*```$")
_NULL_STRIP = " \t\r\n\"'`*_.,;:!?()[]“”‘’"


def _strip_fences(text: str) -> str:
    text = _FENCE_LINE.sub("", text.strip()).strip()
    return _FENCE_ENDS.sub("", text).strip()


def _nullish(s: str) -> bool:
    """The whole string says NULL (punctuation, quotes and markdown around it ignored)."""
    return s.strip(_NULL_STRIP).lower() in ("null", "none")


def _says_null(line: str) -> bool:
    """A line that is NULL, or starts with an upper-case NULL followed by an explanation."""
    core = line.strip(_NULL_STRIP)
    return _nullish(core) or re.match(r"NULL\b(?![-'])", core) is not None


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


def _null_answer(spec: KindSpec, text: str) -> bool:
    """Whether the (fence-stripped) output as a whole is a NULL answer."""
    if _nullish(text):
        return True
    if spec.format == "xml":
        m = re.search(r"<\s*data\b[^>]*>(.*?)<\s*/\s*data\s*>", text, re.I | re.S)
        if m and (not m.group(1).strip() or _nullish(m.group(1))):
            return True
        if any(_open_re(t).search(text) for t in spec.tags):
            return False  # structured output: NULL inside tags is checked per tag
    elif spec.format == "json":
        if re.search(r"[\[{]", text):
            return False  # a JSON value: null / [] are checked after decoding
    lines = _lines(re.sub(r"<[^>]*>", " ", text))  # tags around a bare NULL (e.g. an unclosed <data>)
    return bool(lines) and (_says_null(lines[0]) or _says_null(lines[-1]))


def _words(text: str) -> int:
    return len(text.split())


def _check_words(spec: KindSpec, text: str) -> str:
    """"" when the main text is within the loose bounds [min_words*0.5, max_words*1.5], else why not."""
    n = _words(text)
    if spec.max_words is not None:
        hi = math.floor(spec.max_words * 1.5)
        if n > hi:
            return f"too long: {n} words > {hi}"
    if spec.min_words is not None:
        lo = math.ceil(spec.min_words * 0.5)
        if n < lo:
            return f"too short: {n} words < {lo}"
    return ""


def _clean(value: str) -> str:
    return html.unescape(value).strip()


# ----------------------------------------------------------------------------------------- text
_LABELS = (  # alternatives of a leading label such as "Persona:" or "**Final answer:**"
    r"(?:final\s+)?(?:answer|output|response|result)|(?:user(?:'s)?\s+)?(?:persona|profile)|"
    r"(?:post\s+|review\s+)?summary|writing\s+style(?:\s+description)?|style|description|rewrite"
)
_CHATTER_FIRST = re.compile(  # "Sure! ...", "Certainly, here is ...", "Here is the persona:"
    r"^(?:(?:sure|certainly|okay|ok|of course|absolutely)\s*[,.!:].*|(?:here(?:'s| is| are)|below is)\b.*:)$", re.I
)
_CHATTER_LAST = re.compile(
    r"^\(?\s*(?:word count\b|\d+\s+words\b|note\s*:|let me know\b|i hope\b|hope this\b|"
    r"this (?:persona|profile|summary|description) (?:is|captures|highlights|reflects)\b)",
    re.I,
)


def _strip_label(text: str, spec: KindSpec) -> str:
    names = f"{_LABELS}|{re.escape(spec.kind.replace('_', ' '))}"
    label = re.compile(rf"^(?:#+\s*)?[*_]*\s*(?:{names})\s*[*_]*\s*(?::|(?=\n))\s*[*_]*\s*", re.I)
    return label.sub("", text, count=1).strip()


def _strip_chatter(text: str, spec: KindSpec) -> str:
    for _ in range(2):
        lines = text.split("\n")
        if len(_lines(text)) > 1 and _CHATTER_FIRST.match(lines[0].strip()):
            text = "\n".join(lines[1:]).strip()
        text = _strip_label(text, spec)
    paragraphs = re.split(r"\n\s*\n", text)
    while len(paragraphs) > 1 and _CHATTER_LAST.match(paragraphs[-1].strip()):
        paragraphs.pop()
    return "\n\n".join(paragraphs).strip()


def _unquote(text: str) -> str:
    for left, right in (('"', '"'), ("“", "”"), ("'", "'")):
        if len(text) > 1 and text.startswith(left) and text.endswith(right):
            inner = text[1:-1]
            if left not in inner and right not in inner:
                return inner.strip()
    return text


_WRAPPER = re.compile(r"^<\s*([\w-]+)[^>]*>(.*?)(?:<\s*/\s*\1\s*>)?$", re.S)


def _unwrap(text: str) -> str:
    """A text answer wrapped in one tag of its own, e.g. <persona>...</persona>."""
    m = _WRAPPER.match(text)
    return m.group(2).strip() if m and "<" not in m.group(2) else text


def _parse_text(spec: KindSpec, text: str) -> Parsed:
    out = _clean(_unquote(_strip_chatter(_strip_label(_unwrap(text), spec), spec)))
    if not out:
        return _fail("empty output")
    err = _check_words(spec, out)
    return _fail(err) if err else _good({"text": out})


# ------------------------------------------------------------------------------------------ xml
def _open_re(tag: str) -> re.Pattern:
    return re.compile(rf"<\s*{re.escape(tag)}\b[^>/]*>", re.I)


def _close_re(tag: str) -> re.Pattern:
    return re.compile(rf"<\s*/\s*{re.escape(tag)}\s*>", re.I)


_TRAILING_CLOSERS = re.compile(r"(?:\s*<\s*/\s*[\w-]+\s*>)+\s*$")


def _find_tag(text: str, tag: str, known: tuple[str, ...]) -> tuple[str | None, str]:
    """(content, "") for a tag, (None, "") when absent, (None, why) when malformed."""
    opens = list(_open_re(tag).finditer(text))
    if not opens:
        return None, ""
    close = _close_re(tag).search(text, opens[0].end())
    if close:  # the last opening before the first closing: skips a tag mentioned in prose before
        start = max(m.end() for m in opens if m.end() <= close.start())
        return text[start:close.start()], ""
    rest = text[opens[0].end():]
    if any(_open_re(k).search(rest) for k in known if k != tag):
        return None, f"unclosed <{tag}>"
    return _TRAILING_CLOSERS.sub("", rest), ""  # the last tag, cut off: take the text to the end


def _xml_fields(spec: KindSpec, text: str) -> tuple[dict, str]:
    known = spec.tags + spec.optional_tags
    if not any(_open_re(t).search(text) for t in known) and "&lt;" in text:
        text = html.unescape(text)  # the whole answer came back entity-escaped
    if not any(_open_re(t).search(text) for t in known):
        return {}, "no XML tags found (expected " + ", ".join(f"<{t}>" for t in spec.tags) + ")"
    fields: dict[str, str] = {}
    for tag in known:
        value, err = _find_tag(text, tag, known)
        if err:
            return {}, err
        if value is None:
            if tag in spec.tags:
                return {}, f"missing <{tag}>"
            continue
        fields[tag] = _clean(value)
    return fields, ""


def _parse_xml(spec: KindSpec, text: str) -> Parsed:
    fields, err = _xml_fields(spec, text)
    if err:
        return _fail(err)
    if spec.allow_null and any(_nullish(fields[t]) for t in spec.tags):
        return _null(spec)
    post = _XML_POST.get(spec.kind)
    if post is not None:
        return post(spec, fields)
    for tag in spec.tags:
        if not fields[tag]:
            return _fail(f"empty <{tag}>")
    err = _check_words(spec, fields[spec.tags[-1]])  # bounds apply to the main text, the last tag
    return _fail(err) if err else _good(fields)


def _word(value: Any) -> str:
    return str(value).strip(_NULL_STRIP).lower()


def _tag_v1(spec: KindSpec, fields: dict) -> Parsed:
    quality, harmless = _word(fields["quality"]), _word(fields["harmless"])
    if quality not in _QUALITY:
        return _fail(f"quality={quality!r} not in high|medium|low")
    if harmless not in ("yes", "no"):
        return _fail(f"harmless={harmless!r} not in yes|no")
    if not fields["rewrite"] and quality != "low":  # nothing left after cleaning only fits a low post
        return _fail("empty <rewrite>")
    return _good({"rewrite": fields["rewrite"], "quality": quality, "harmless": harmless == "yes"})


_XML_POST: dict[str, Callable[[KindSpec, dict], Parsed]] = {"tag_v1": _tag_v1, "tag_v1_comment": _tag_v1}


# ----------------------------------------------------------------------------------------- json
def _unbalanced(s: str) -> bool:
    """True when s ends inside a string or with brackets still open (a truncated JSON value)."""
    depth, in_str, esc = 0, False, False
    for ch in s:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return in_str or depth > 0


def _salvage_array(text: str, start: int) -> list:
    """The complete leading items of a truncated JSON array that opens at text[start]."""
    dec, items, pos = json.JSONDecoder(), [], start + 1
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        try:
            value, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError:
            return items
        items.append(value)
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text) or text[pos] != ",":
            return items
        pos += 1


def _extract_json(text: str, want: str | None) -> tuple[Any, str]:
    """(value, "") for the first JSON value of the wanted type in text, else (None, why).

    A truncated array gives its complete leading items, when it has any.
    """
    starts = {"object": "{", "array": "["}.get(want or "", "{[")
    dec = json.JSONDecoder()
    first_err: tuple[json.JSONDecodeError, int] | None = None
    tries = 0
    for i, ch in enumerate(text):
        if ch not in starts:
            continue
        tries += 1
        if tries > 50:
            break
        try:
            value, _ = dec.raw_decode(text, i)
        except json.JSONDecodeError as e:
            first_err = first_err or (e, i)
            if _unbalanced(text[i:]):
                first_err = (e, i)
                break  # the value runs to the end of the output: truncated, no later start can be better
            continue  # a bracket in prose before the JSON
        return value, ""
    if first_err is None:
        return None, f"no JSON {want or 'value'} found"
    e, i = first_err
    truncated = _unbalanced(text[i:])
    if truncated and text[i] == "[":
        items = _salvage_array(text, i)
        if items:
            return items, ""
    return None, f"invalid JSON at char {e.pos}" + (" (truncated?)" if truncated else f": {e.msg}")


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "integer": (int,), "number": (int, float),
    "boolean": (bool,), "null": (type(None),),
}


def _schema_error(schema: dict, value: Any, where: str = "") -> str:
    """A light JSON-schema check (type, enum, required, properties, items, minimum, maximum)."""
    label = where or "value"
    typ = schema.get("type")
    if isinstance(typ, str) and typ in _JSON_TYPES:
        ok = isinstance(value, _JSON_TYPES[typ]) and not (typ in ("integer", "number") and isinstance(value, bool))
        if not ok:
            return f"{label}: expected {typ}, got {type(value).__name__}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{label}={value!r} not in {'|'.join(map(str, schema['enum']))}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{label}={value} below {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{label}={value} above {schema['maximum']}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                return f"{where + ': ' if where else ''}missing {key!r}"
        for key, sub in (schema.get("properties") or {}).items():
            if key in value:
                err = _schema_error(sub, value[key], key if not where else f"{where}.{key}")
                if err:
                    return err
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value, 1):
            err = _schema_error(schema["items"], item, f"{where or 'item'} {n}" if not where else f"{where}[{n}]")
            if err:
                return err
    return ""


def _norm_key(key: Any) -> str:
    return re.sub(r"[\s_-]+", " ", str(key)).strip().lower()


def _yes_no(value: Any) -> str:
    if isinstance(value, bool):
        return "YES" if value else "NO"
    return str(value).strip(_NULL_STRIP).upper()


def _tag_v2(spec: KindSpec, value: Any) -> Parsed:
    if not isinstance(value, dict):
        return _fail(f"expected a JSON object, got {type(value).__name__}")
    d = {_norm_key(k): v for k, v in value.items()}
    d = {k: (_yes_no(v) if k in ("unsafe content", "social event") else v) for k, v in d.items()}
    err = _schema_error(spec.json_schema or {}, d)
    if err:
        return _fail(err)
    return _good({"unsafe": d["unsafe content"] == "YES", "social": d["social event"] == "YES",
                  "rewrite_v2": _clean(d["rewritten text"])})


def _stories(spec: KindSpec, value: Any) -> Parsed:
    if isinstance(value, dict):  # {"stories": [...]}: one list inside an object
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            value = lists[0]
    if not isinstance(value, list):
        return _fail(f"expected a JSON array, got {type(value).__name__}")
    if not value:
        return _null(spec)
    items = [{_norm_key(k): v for k, v in it.items()} if isinstance(it, dict) else it for it in value[:MAX_STORIES]]
    err = _schema_error(spec.json_schema or {}, items)
    if err:
        return _fail(err.replace("item ", "story ", 1))
    stories = [{"summary": _clean(it["summary"]), "content": _clean(it["content"])} for it in items]
    for n, story in enumerate(stories, 1):
        if not story["content"]:
            return _fail(f"story {n}: empty content")
    return _good({"stories": stories})


def _score(dim: str, value: Any) -> tuple[int | None, str]:
    n: int | None = None
    if isinstance(value, bool):
        pass
    elif isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)(?:\.0+)?\s*(?:/\s*10\s*)?", value)
        n = int(m.group(1)) if m else None
    if n is None:
        return None, f"score {dim!r}={value!r} is not an integer"
    if not 1 <= n <= 10:
        return None, f"score {dim!r}={n} outside 1..10"
    return n, ""


def _judge_from(spec: KindSpec, d: dict) -> Parsed:
    if isinstance(d.get("scores"), dict):  # {"explanation": ..., "scores": {...}}
        d = {**d, **d["scores"]}
    d = {_norm_key(k).replace(" ", "_"): v for k, v in d.items()}
    scores = {}
    for dim in spec.dims:
        if dim not in d:
            return _fail(f"missing score {dim!r}")
        n, err = _score(dim, d[dim])
        if err:
            return _fail(err)
        scores[dim] = n
    explanation = d.get("explanation")
    return _good({"scores": scores, "explanation": _clean(explanation) if isinstance(explanation, str) else ""})


def _judge_xml(spec: KindSpec, text: str) -> Parsed | None:
    """The XML form `<hallucination>8</hallucination>...`, or None when the text has no such tags."""
    known = ("explanation",) + spec.dims
    if not any(_open_re(d).search(text) for d in spec.dims):
        return None
    d = {}
    for tag in known:
        value, err = _find_tag(text, tag, known)
        if err:
            return _fail(err)
        if value is not None:
            d[tag] = _clean(value)
    return _judge_from(spec, d)


def _judge(spec: KindSpec, value: Any) -> Parsed:
    if not isinstance(value, dict):
        return _fail(f"expected a JSON object, got {type(value).__name__}")
    return _judge_from(spec, value)


_JSON_POST: dict[str, Callable[[KindSpec, Any], Parsed]] = {"tag_v2": _tag_v2, "stories": _stories}


def _parse_json(spec: KindSpec, text: str) -> Parsed:
    want = (spec.json_schema or {}).get("type")
    value, err = _extract_json(text, want if want in ("object", "array") else None)
    if err:
        if spec.level == "judge":
            alt = _judge_xml(spec, text)
            if alt is not None:
                return alt
        return _fail(err)
    if value is None:
        return _null(spec)
    if spec.level == "judge":
        return _judge(spec, value)
    post = _JSON_POST.get(spec.kind)
    if post is not None:
        return post(spec, value)
    if isinstance(value, list) and not value:
        return _null(spec)
    err = _schema_error(spec.json_schema or {}, value)
    if err:
        return _fail(err)
    return _good(value if isinstance(value, dict) else {"items": value})


# ------------------------------------------------------------------------------------------- api
def parse_output(spec: KindSpec, text: str) -> Parsed:
    """Parse one raw completion of `spec`'s kind into typed fields, or say why it is unusable."""
    if text is None or not text.strip():
        return _fail("empty output")
    body = _strip_fences(text)
    if not body:
        return _fail("empty output")
    if _null_answer(spec, body):
        return _null(spec)
    if spec.format == "text":
        return _parse_text(spec, body)
    if spec.format == "xml":
        return _parse_xml(spec, body)
    return _parse_json(spec, body)


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def render_sample(spec: KindSpec, fields: dict) -> str:
    """The text shown to a judge for a parsed sample of `spec`'s kind ("NULL" for a null sample)."""
    if not fields:
        return "NULL"
    if spec.level == "judge":
        lines = [f"Explanation: {fields.get('explanation', '')}"]
        lines += [f"{dim}: {n}" for dim, n in fields.get("scores", {}).items()]
        return "\n".join(lines)
    if "stories" in fields:
        return "\n\n".join(f"{n}. {s['summary']}\n{s['content']}" for n, s in enumerate(fields["stories"], 1))
    if spec.format == "text":
        return fields["text"]
    if spec.kind == "tag_v2":
        return (f"Unsafe content: {'YES' if fields['unsafe'] else 'NO'}\n"
                f"Social event: {'YES' if fields['social'] else 'NO'}\nRewritten text: {fields['rewrite_v2']}")
    if spec.kind in _XML_POST:
        return (f"Rewrite: {fields['rewrite']}\nQuality: {fields['quality']}\n"
                f"Harmless: {'yes' if fields['harmless'] else 'no'}")
    order = [t for t in spec.tags + spec.optional_tags if t in fields]
    order += [k for k in fields if k not in order]
    return "\n".join(f"{_label(k)}: {fields[k]}" for k in order)
