"""Prompt templates (synthesis/prompts) and output parsers (synthesis/parsers): no Ray, no model."""
from __future__ import annotations

import json
import re

import pytest

from synthesis import prompts as P
from synthesis.parsers import MAX_STORIES, Parsed, parse_output, render_sample
from synthesis.prompts import (
    KindSpec,
    all_kinds,
    build_messages,
    load_spec,
    prompt_hash,
    structured_output,
    system_prompt,
)

HISTORY = "Below are the posts of one reddit user, oldest first.\n\n[2021-03-02] I started a new job as a nurse."
VARS = {
    "platform": "reddit", "post": "I finally told my sister I was moving to Denver.", "date": "2021-05-01",
    "parent": "What is the hardest thing you told your family?", "pseudonym": "Mara",
    "source": "I finally told my sister...", "sample": "Scenario: ...", "kind": "sqa_general",
}
MAX_TOKENS = {
    "tag_v1": 768, "tag_v1_comment": 768, "tag_v2": 768, "persona": 200, "persona_amazon": 200, "profile": 700,
    "profile_amazon": 700, "stories": 2048, "writing_style": 400, "summary": 120, "sqa_general": 512,
    "sqa_thoughts": 512, "sqa_actions": 512, "sqa_reason": 512, "long_scenario": 700, "single_story": 900,
    "behavior_story": 900, "thoughts": 700, "judge_sqa": 400, "judge_scenario": 400, "judge_persona": 400,
    "judge_profile": 400, "judge_stories": 400,
}
JUDGE_OF = {
    "sqa_general": "judge_sqa", "sqa_thoughts": "judge_sqa", "sqa_actions": "judge_sqa", "sqa_reason": "judge_sqa",
    "long_scenario": "judge_scenario", "single_story": "judge_scenario", "behavior_story": "judge_scenario",
    "thoughts": "judge_scenario", "persona": "judge_persona", "persona_amazon": "judge_persona",
    "profile": "judge_profile", "profile_amazon": "judge_profile", "stories": "judge_stories",
    "summary": None, "writing_style": None, "tag_v1": None, "tag_v1_comment": None, "tag_v2": None,
}
DIMS = {
    "judge_sqa": ("hallucination", "coverage", "fidelity", "novelty", "leakage", "overall"),
    "judge_scenario": ("hallucination", "coverage", "fidelity", "novelty", "overall"),
    "judge_persona": ("hallucination", "coverage", "conciseness", "relevance", "overall"),
    "judge_profile": ("hallucination", "coverage", "relevance", "fluency", "conciseness", "informativeness",
                      "novelty", "overall"),
    "judge_stories": ("hallucination", "coverage", "informativeness", "novelty", "overall"),
}
FIELDS = {
    "tag_v1": {"rewrite", "quality", "harmless"}, "tag_v1_comment": {"rewrite", "quality", "harmless"},
    "tag_v2": {"unsafe", "social", "rewrite_v2"}, "stories": {"stories"},
    "sqa_general": {"scenario", "question", "answer"}, "sqa_thoughts": {"scenario", "question", "answer"},
    "sqa_actions": {"scenario", "question", "answer"}, "sqa_reason": {"scenario", "question", "answer"},
    "long_scenario": {"characters", "summary", "scenario"}, "single_story": {"background", "characters", "plots"},
    "behavior_story": {"background", "characters", "story"}, "thoughts": {"background", "characters", "thoughts"},
}


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


def spec(kind: str) -> KindSpec:
    return load_spec(kind)


def parse(kind: str, text: str) -> Parsed:
    return parse_output(load_spec(kind), text)


def ok(kind: str, text: str) -> dict:
    r = parse(kind, text)
    assert r.ok and not r.null and r.error == "", r
    return r.fields


def bad(kind: str, text: str) -> str:
    r = parse(kind, text)
    assert not r.ok and not r.null and r.fields == {} and r.error, r
    return r.error


def is_null(kind: str, text: str) -> None:
    r = parse(kind, text)
    assert r == Parsed(ok=True, null=True, fields={}, error=""), r


# ------------------------------------------------------------------------------------ prompts
def test_all_kinds_are_the_expected_ones():
    assert all_kinds() == sorted(MAX_TOKENS)


@pytest.mark.parametrize("kind", sorted(MAX_TOKENS))
def test_every_kind_loads_and_fills(kind):
    s = load_spec(kind)
    assert s.kind == kind and s.max_tokens == MAX_TOKENS[kind]
    assert s.variables <= P.LEVEL_VARIABLES[s.level]
    if s.level == "tag":
        assert {"post", "platform"} <= s.variables
    if s.level == "post":
        assert {"post", "date", "platform"} <= s.variables
    if s.level == "judge":
        assert s.variables == {"source", "sample", "kind"}
    history = HISTORY if s.level in ("user", "post") else None
    msgs = build_messages(s, history=history, **VARS)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == system_prompt(s.level == "judge")
    user = msgs[1]["content"]
    if history:
        assert user.startswith(HISTORY + "\n\n")
    for name in s.variables:
        assert VARS[name] in user
    assert "{{" not in user and "}}" not in user  # doubled braces became literal ones
    assert not re.search(r"\{(platform|post|date|parent|pseudonym|source|sample|kind)\}", user)  # all filled


@pytest.mark.parametrize("kind", sorted(MAX_TOKENS))
def test_spec_shape(kind):
    s = load_spec(kind)
    assert s.judge == JUDGE_OF.get(kind)
    if s.judge:
        assert load_spec(s.judge).level == "judge"
    if s.format == "xml":
        assert s.tags and set(s.tags) == FIELDS[kind]
        for tag in s.tags:  # the instruction shows the output skeleton
            assert f"<{tag}>" in s.instruction
    if s.format == "json":
        assert structured_output(s) == {"json": s.json_schema}
        json.dumps(s.json_schema)  # serialisable for the structured-output request
    elif s.format == "xml":
        regex = structured_output(s)["regex"]
        for tag in s.tags:
            assert f"<{tag}>" in regex and f"</{tag}>" in regex
    else:
        assert structured_output(s) is None
    if s.allow_null:
        assert "NULL" in s.instruction or "[]" in s.instruction
    if s.level == "user":
        assert re.search(r"(posts|history) above", s.instruction)
    if s.level == "judge":
        assert s.dims == DIMS[kind]
        schema = s.json_schema
        assert schema["type"] == "object" and set(schema["required"]) == {"explanation", *s.dims}
        for dim in s.dims:
            assert schema["properties"][dim] == {"type": "integer", "minimum": 1, "maximum": 10}
            block = s.instruction.split(f"\n{dim}:", 1)[1]  # the rubric of this dim, anchored at 10/8/5/1
            anchors = re.findall(r"^\s+(\d+) ", block, re.M)[:4]
            assert anchors == ["10", "8", "5", "1"], (dim, anchors)


def test_word_bounds_and_nullability():
    assert load_spec("persona").max_words == 100 and load_spec("persona").allow_null
    assert (load_spec("profile").min_words, load_spec("profile").max_words) == (100, 400)
    assert (load_spec("long_scenario").min_words, load_spec("long_scenario").max_words) == (150, 300)
    assert not load_spec("profile").allow_null and not load_spec("tag_v1").allow_null
    assert load_spec("stories").allow_null and load_spec("sqa_reason").allow_null


def test_build_messages_errors_and_extras():
    s = load_spec("sqa_general")
    with pytest.raises(ValueError, match=r"sqa_general.*missing.*\bpost\b.*given: date, platform"):
        build_messages(s, platform="reddit", date="2021")
    with pytest.raises(ValueError, match="missing.*post"):
        build_messages(s, platform="reddit", date="2021", post=None)
    msgs = build_messages(s, platform="reddit", date="2021", post="p", unused="x", pseudonym="Q")
    assert not msgs[1]["content"].startswith("Below")
    # braces in values are not re-interpreted
    msgs = build_messages(s, platform="reddit", date="2021", post="a {weird} post {0}")
    assert "a {weird} post {0}" in msgs[1]["content"]


def test_prompt_hash():
    m1 = build_messages(load_spec("persona"), history=HISTORY, platform="reddit")
    m2 = build_messages(load_spec("persona"), history=HISTORY, platform="reddit")
    m3 = build_messages(load_spec("persona"), history=HISTORY + ".", platform="reddit")
    assert prompt_hash(m1) == prompt_hash(m2) != prompt_hash(m3)
    assert re.fullmatch(r"[0-9a-f]{16}", prompt_hash(m1))
    reordered = [{"content": m["content"], "role": m["role"]} for m in m1]
    assert prompt_hash(reordered) == prompt_hash(m1)


def test_load_spec_cache_unknown_and_system():
    assert load_spec("persona") is load_spec("persona")
    with pytest.raises(KeyError, match="unknown synthesis kind 'personna'.*persona, persona_amazon"):
        load_spec("personna")
    assert system_prompt() and system_prompt(judge=True) and system_prompt() != system_prompt(True)
    assert load_spec("sqa_reason").variables == frozenset({"platform", "post", "date"})
    assert "pseudonym" in load_spec("long_scenario").variables


GOOD_YAML = """\
kind: {name}
level: post
format: xml
tags: [a]
max_tokens: 10
instruction: "{{post}}"
"""


@pytest.fixture
def prompts_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "PROMPTS_DIR", tmp_path)
    P.load_spec.cache_clear()
    yield tmp_path
    P.load_spec.cache_clear()


@pytest.mark.parametrize("edit, key", [
    (lambda y: y + "colour: red\n", "colour"),
    (lambda y: y.replace("level: post", "level: thread"), "level"),
    (lambda y: y.replace("format: xml", "format: yaml"), "format"),
    (lambda y: y.replace("tags: [a]", "tags: []"), "tags"),
    (lambda y: y.replace("format: xml", "format: json").replace("tags: [a]\n", ""), "json_schema"),
    (lambda y: y.replace("level: post", "level: judge").replace('"{post}"', '"{sample}"')
     .replace("format: xml", "format: json").replace("tags: [a]", "json_schema: {type: object}"), "dims"),
    (lambda y: y.replace("kind: k", "kind: other"), "kind"),
    (lambda y: y.replace('"{post}"', '"{\\"a\\": 1}"'), "instruction"),  # undoubled JSON braces
    (lambda y: y.replace('"{post}"', '"{Post}"'), "instruction"),  # not a variable of this level
    (lambda y: y.replace('"{post}"', '"{post"'), "instruction"),
    (lambda y: y.replace("max_tokens: 10", "max_tokens: many"), "max_tokens"),
    (lambda y: y + "allow_null: maybe\n", "allow_null"),
    (lambda y: y + "min_words: 50\nmax_words: 10\n", "min_words"),
    (lambda y: y.replace("max_tokens: 10\n", ""), "max_tokens"),
])
def test_yaml_validation(prompts_dir, edit, key):
    (prompts_dir / "k.yaml").write_text(GOOD_YAML.format(name="k"))
    assert load_spec("k").tags == ("a",)
    P.load_spec.cache_clear()
    (prompts_dir / "k.yaml").write_text(edit(GOOD_YAML.format(name="k")))
    with pytest.raises(ValueError, match=rf"^k\.yaml: key '{key}'"):
        load_spec("k")


# -------------------------------------------------------------------------------- tag parsers
def test_tag_v1_good():
    f = ok("tag_v1", "<rewrite>I moved to Denver &amp; loved it.</rewrite>\n<quality>high</quality>\n"
                     "<harmless>yes</harmless>")
    assert f == {"rewrite": "I moved to Denver & loved it.", "quality": "high", "harmless": True}
    f = ok("tag_v1", "Here is the result:\n```xml\n<REWRITE>\n  Text here.\n</REWRITE>\n<Quality>Medium</Quality>"
                     "<Harmless>NO</Harmless>\n```\nLet me know if you need more.")
    assert f == {"rewrite": "Text here.", "quality": "medium", "harmless": False}
    # tags in another order, value wrapped in markdown/quotes
    f = ok("tag_v1_comment", '<quality>"low"</quality><harmless>**yes**</harmless><rewrite>lol same</rewrite>')
    assert f == {"rewrite": "lol same", "quality": "low", "harmless": True}
    # nothing left after cleaning: fine for a low post only
    assert ok("tag_v1", "<rewrite></rewrite><quality>low</quality><harmless>yes</harmless>")["rewrite"] == ""
    assert bad("tag_v1", "<rewrite> </rewrite><quality>high</quality><harmless>yes</harmless>") == "empty <rewrite>"


def test_tag_v1_bad():
    assert bad("tag_v1", "<rewrite>x</rewrite><quality>great</quality><harmless>yes</harmless>") == \
        "quality='great' not in high|medium|low"
    assert bad("tag_v1", "<rewrite>x</rewrite><quality>high</quality><harmless>maybe</harmless>") == \
        "harmless='maybe' not in yes|no"
    assert bad("tag_v1", "<rewrite>x</rewrite><harmless>yes</harmless>") == "missing <quality>"
    assert bad("tag_v1", "<rewrite>x<quality>high</quality><harmless>yes</harmless>") == "unclosed <rewrite>"
    # truncated inside the rewrite: the tags never came
    assert bad("tag_v1", "<rewrite>a very long post that was cut off") == "missing <quality>"
    assert bad("tag_v1", "The post is high quality and harmless.").startswith("no XML tags found")
    assert bad("tag_v1", "NULL") == "NULL answer"
    assert bad("tag_v1", "") == "empty output"
    assert bad("tag_v1", "  \n```\n```  ") == "empty output"


def test_tag_v1_missing_last_close_tag():
    f = ok("tag_v1", "<rewrite>hi there</rewrite><quality>high</quality><harmless>yes")
    assert f["harmless"] is True


def test_tag_v2():
    f = ok("tag_v2", '{"unsafe content": "NO", "social event": "YES", "rewritten text": "I met my neighbour."}')
    assert f == {"unsafe": False, "social": True, "rewrite_v2": "I met my neighbour."}
    f = ok("tag_v2", 'Sure:\n```json\n{"Unsafe_Content": "yes", "social event": "no", '
                     '"rewritten text": "It is 12 Fake St."}\n```')
    assert f == {"unsafe": True, "social": False, "rewrite_v2": "It is 12 Fake St."}
    assert bad("tag_v2", '{"unsafe content": "MAYBE", "social event": "YES", "rewritten text": "x"}') == \
        "unsafe content='MAYBE' not in YES|NO"
    assert bad("tag_v2", '{"unsafe content": "NO", "rewritten text": "x"}') == "missing 'social event'"
    assert bad("tag_v2", '{"unsafe content": "NO", "social event": "YES", "rewritten text": "I went to')\
        .endswith("(truncated?)")
    assert bad("tag_v2", '{"unsafe content": "NO", "social event": "YES", "rewritten text": 5}') == \
        "rewritten text: expected string, got int"
    assert bad("tag_v2", "no json here") == "no JSON object found"
    assert bad("tag_v2", "null") == "NULL answer"


# ------------------------------------------------------------------------------- text parsers
PERSONA = "The user is a nurse in her thirties who moved to Denver and values family."


@pytest.mark.parametrize("raw", [
    PERSONA,
    f"  {PERSONA}\n\n",
    f"Persona: {PERSONA}",
    f"**Persona:** {PERSONA}",
    f"## Persona\n{PERSONA}",
    f"```\n{PERSONA}\n```",
    f"```text\nPersona: {PERSONA}\n```",
    f"Sure! Here is the persona:\n\n{PERSONA}",
    f"Here is the persona based on the posts:\n{PERSONA}\n\n(Word count: 14)",
    f'"{PERSONA}"',
    f"<persona>{PERSONA}</persona>",
    f"Answer: {PERSONA}",
    f"{PERSONA}\n\nNote: the posts do not mention her age.",
    PERSONA.replace("and", "&amp;"),
])
def test_persona_good(raw):
    assert ok("persona", raw)["text"].replace("&", "and") == PERSONA


@pytest.mark.parametrize("raw", [
    "NULL", "null", "None", "NULL.", '"NULL"', "**NULL**", "```\nNULL\n```", "  NULL  \n",
    "NULL\n\nThe posts are too short to say anything about the user.",
    "The posts only share links.\n\nNULL",
    "NULL - the posts contain no personal information.",
])
def test_persona_null(raw):
    is_null("persona", raw)
    is_null("persona_amazon", raw)


def test_text_null_on_non_nullable_and_empty():
    assert bad("profile", "NULL") == "NULL answer"
    assert bad("summary", "None") == "NULL answer"
    assert bad("persona", "") == "empty output"
    assert bad("persona", "Persona:") == "empty output"


def test_text_word_bounds_are_loose():
    assert ok("persona", words(150))  # max 100 * 1.5
    assert bad("persona", words(151)) == "too long: 151 words > 150"
    assert bad("persona", words(212)) == "too long: 212 words > 150"
    assert ok("profile", "The user is a " + words(46))  # 50 words = min 100 * 0.5
    assert bad("profile", "The user is a " + words(26)) == "too short: 30 words < 50"
    assert bad("profile", words(601)) == "too long: 601 words > 600"
    assert ok("writing_style", words(25))
    assert bad("writing_style", words(24)) == "too short: 24 words < 25"
    assert bad("summary", words(91)) == "too long: 91 words > 90"


def test_text_keeps_paragraphs_and_words_that_look_like_labels():
    text = "The user is a teacher.\n\nShe writes about her students."
    assert ok("profile", text + " " + words(60))["text"].startswith(text)
    # "None of ..." is a sentence, not a NULL answer
    assert ok("persona", "None of the posts mention age, but the user is a devoted father.")["text"].startswith("None")
    assert ok("summary", "The user describes OK Go's concert in Denver.")["text"].startswith("The user")


# -------------------------------------------------------------------------------- xml parsers
SQA = ("<data>\n<scenario>The user, a nurse, tells her sister over dinner that she has accepted a job in Denver."
       "</scenario>\n<question>How does the user feel after the conversation?</question>\n"
       "<answer>The user will probably feel relieved but guilty.</answer>\n</data>")
SQA_FIELDS = {"scenario": "The user, a nurse, tells her sister over dinner that she has accepted a job in Denver.",
              "question": "How does the user feel after the conversation?",
              "answer": "The user will probably feel relieved but guilty."}


@pytest.mark.parametrize("kind", ["sqa_general", "sqa_thoughts", "sqa_actions", "sqa_reason"])
@pytest.mark.parametrize("raw", [
    SQA,
    SQA.replace("<data>", "").replace("</data>", ""),  # the wrapper is optional
    f"```xml\n{SQA}\n```",
    f"Here is the social QA sample:\n\n{SQA}\n\nI hope this helps!",
    SQA.replace("<scenario>", "<SCENARIO>").replace("</scenario>", "</Scenario>").replace("data>", "DATA>"),
    SQA.replace("</answer>\n</data>", "\n</data>"),  # the last tag is not closed
    SQA.replace("</answer>\n</data>", ""),  # cut off at the end
    SQA.replace("<data>", 'I will put the scenario in <scenario> tags:\n<data>'),  # a tag named in prose first
])
def test_sqa_good(kind, raw):
    assert ok(kind, raw) == SQA_FIELDS


@pytest.mark.parametrize("raw", [
    "NULL", "<data>NULL</data>", "<data>\n  NULL\n</data>", "```xml\n<data>NULL</data>\n```", "<data></data>",
    "<data>NULL", "The post gives no explicit reason.\nNULL",
    "<data><scenario>NULL</scenario><question>NULL</question><answer>NULL</answer></data>",
    SQA.replace("The user will probably feel relieved but guilty.", "NULL"),
])
def test_sqa_null(raw):
    is_null("sqa_reason", raw)


def test_sqa_bad():
    assert bad("sqa_general", SQA.replace("<question>How does the user feel after the conversation?</question>",
                                          "")) == "missing <question>"
    assert bad("sqa_general", SQA.replace("</scenario>", "")) == "unclosed <scenario>"
    assert bad("sqa_general", SQA.replace("The user will probably feel relieved but guilty.", "")) == "empty <answer>"
    assert bad("sqa_general", "Scenario: she moves. Question: why? Answer: a job.").startswith("no XML tags found")
    assert bad("sqa_general", "   ") == "empty output"
    assert ok("sqa_general", SQA.replace("&", "").replace("relieved but ", "relieved &amp; "))["answer"] == \
        "The user will probably feel relieved & guilty."


def test_xml_entity_escaped_output():
    escaped = SQA.replace("<", "&lt;").replace(">", "&gt;")
    assert ok("sqa_general", escaped) == SQA_FIELDS


LONG = ("<characters>Mara: the user, a nurse. Jen: her older sister, protective.</characters>\n"
        "<summary>Mara tells her sister she is moving.</summary>\n<scenario>{}</scenario>")


def test_long_scenario_and_word_bounds_on_main_tag():
    f = ok("long_scenario", LONG.format(words(200)))
    assert set(f) == FIELDS["long_scenario"] and f["summary"] == "Mara tells her sister she is moving."
    assert ok("long_scenario", LONG.format(words(75)))  # 150 * 0.5
    assert bad("long_scenario", LONG.format(words(74))) == "too short: 74 words < 75"
    assert bad("long_scenario", LONG.format(words(451))) == "too long: 451 words > 450"
    is_null("long_scenario", "NULL")
    # truncated inside the scenario: kept (the judge sees it), as long as it is long enough
    assert ok("long_scenario", LONG.format(words(120)).replace("</scenario>", ""))["scenario"] == words(120)


@pytest.mark.parametrize("kind, main, n", [
    ("single_story", "plots", 300), ("behavior_story", "story", 420), ("thoughts", "thoughts", 120),
])
def test_story_kinds(kind, main, n):
    raw = f"<background>It was May.</background><characters>I am a nurse. Jen is my sister.</characters><{main}>" \
          f"{words(n)}</{main}>"
    f = ok(kind, raw)
    assert set(f) == FIELDS[kind] and f[main] == words(n)
    assert f["characters"].startswith("I am")
    assert bad(kind, raw.replace("<background>It was May.</background>", "")) == "missing <background>"
    is_null(kind, "NULL")
    is_null(kind, raw.replace(words(n), "NULL"))
    assert bad("behavior_story", raw.replace(words(n), words(150)).replace(main, "story")) == \
        "too short: 150 words < 200"


def test_render_xml():
    s = load_spec("sqa_reason")
    assert render_sample(s, SQA_FIELDS) == (f"Scenario: {SQA_FIELDS['scenario']}\nQuestion: {SQA_FIELDS['question']}"
                                            f"\nAnswer: {SQA_FIELDS['answer']}")
    s = load_spec("single_story")
    text = render_sample(s, {"background": "b", "characters": "I am x", "plots": "p"})
    assert text == "Background: b\nCharacters: I am x\nPlots: p"
    assert render_sample(load_spec("persona"), {"text": PERSONA}) == PERSONA
    assert render_sample(s, {}) == "NULL"
    assert render_sample(load_spec("tag_v1"), {"rewrite": "r", "quality": "high", "harmless": True}) == \
        "Rewrite: r\nQuality: high\nHarmless: yes"
    assert "Social event: YES" in render_sample(load_spec("tag_v2"),
                                                {"unsafe": False, "social": True, "rewrite_v2": "r"})


# ------------------------------------------------------------------------------------ stories
def story(i: int) -> dict:
    return {"summary": f"I adopted cat number {i}", "content": f"Last spring I adopted cat number {i} and it hid."}


def test_stories_good():
    raw = json.dumps([story(1), story(2)])
    assert ok("stories", raw) == {"stories": [story(1), story(2)]}
    assert ok("stories", f"Here are the stories:\n```json\n{raw}\n```\nThese are all of them.")["stories"][1] == story(2)
    assert ok("stories", json.dumps({"stories": [story(1)]}))["stories"] == [story(1)]
    upper = [{"Summary": "I moved", "Content": "I moved to Denver &amp; cried."}]
    assert ok("stories", json.dumps(upper))["stories"] == [{"summary": "I moved", "content": "I moved to Denver & cried."}]
    assert ok("stories", "[Note] the list:\n" + raw)["stories"] == [story(1), story(2)]


def test_stories_more_than_20_keeps_the_first_20():
    fields = ok("stories", json.dumps([story(i) for i in range(25)]))
    assert len(fields["stories"]) == MAX_STORIES == 20
    assert fields["stories"][0] == story(0) and fields["stories"][-1] == story(19)


def test_stories_null_and_truncated():
    for raw in ("[]", " [ ] ", "```json\n[]\n```", "NULL", "null", "No stories found.\n[]"):
        is_null("stories", raw)
    full = json.dumps([story(1), story(2), story(3)])
    cut = full[:full.index("number 3") + 3]  # cut inside the third story
    assert ok("stories", cut)["stories"] == [story(1), story(2)]  # the complete stories are kept
    err = bad("stories", full[:30])  # cut inside the first story: nothing complete
    assert err.startswith("invalid JSON at char") and err.endswith("(truncated?)")


def test_stories_bad():
    assert bad("stories", json.dumps([{"summary": "s"}])) == "story 1: missing 'content'"
    assert bad("stories", json.dumps([story(1), {"summary": "s", "content": 3}])) == \
        "story 2.content: expected string, got int"
    assert bad("stories", json.dumps(["just a string"])) == "story 1: expected object, got str"
    assert bad("stories", json.dumps([{"summary": "s", "content": " "}])) == "story 1: empty content"
    assert bad("stories", "I could not find any JSON") == "no JSON array found"
    assert bad("stories", json.dumps(story(1))) == "no JSON array found"
    assert bad("stories", '[{"summary": "a", "content": "b",}]').startswith("invalid JSON at char 33: Expecting property name")


def test_render_stories():
    text = render_sample(load_spec("stories"), {"stories": [story(1), story(2)]})
    assert text == (f"1. {story(1)['summary']}\n{story(1)['content']}\n\n"
                    f"2. {story(2)['summary']}\n{story(2)['content']}")


# ------------------------------------------------------------------------------------- judges
def judge_json(kind: str, **override) -> str:
    d = {"explanation": "Grounded and vivid.", **{dim: 8 for dim in DIMS[kind]}, **override}
    return json.dumps(d)


@pytest.mark.parametrize("kind", sorted(DIMS))
def test_judge_good(kind):
    f = ok(kind, judge_json(kind))
    assert f == {"scores": {d: 8 for d in DIMS[kind]}, "explanation": "Grounded and vivid."}
    assert list(f["scores"]) == list(DIMS[kind])
    assert render_sample(load_spec(kind), f).startswith("Explanation: Grounded and vivid.\nhallucination: 8")


def test_judge_score_forms():
    assert ok("judge_sqa", judge_json("judge_sqa", coverage="9", fidelity=10.0, leakage="7/10", novelty=" 1 "))[
        "scores"] == {"hallucination": 8, "coverage": 9, "fidelity": 10, "novelty": 1, "leakage": 7, "overall": 8}
    f = ok("judge_sqa", "```json\n" + judge_json("judge_sqa") + "\n```\nThe sample is solid.")
    assert f["scores"]["leakage"] == 8
    upper = json.dumps({"Explanation": "ok", **{d.capitalize(): 9 for d in DIMS["judge_sqa"]}})
    assert ok("judge_sqa", upper)["scores"]["overall"] == 9
    nested = json.dumps({"explanation": "ok", "scores": {d: 7 for d in DIMS["judge_persona"]}})
    assert ok("judge_persona", nested)["scores"]["relevance"] == 7
    no_expl = json.dumps({d: 6 for d in DIMS["judge_stories"]})
    assert ok("judge_stories", no_expl)["explanation"] == ""


@pytest.mark.parametrize("override, error", [
    ({"hallucination": 11}, "score 'hallucination'=11 outside 1..10"),
    ({"coverage": 0}, "score 'coverage'=0 outside 1..10"),
    ({"overall": -3}, "score 'overall'=-3 outside 1..10"),
    ({"fidelity": 8.5}, "score 'fidelity'=8.5 is not an integer"),
    ({"novelty": "eight"}, "score 'novelty'='eight' is not an integer"),
    ({"leakage": None}, "score 'leakage'=None is not an integer"),
    ({"leakage": True}, "score 'leakage'=True is not an integer"),
    ({"overall": "8.5"}, "score 'overall'='8.5' is not an integer"),
])
def test_judge_bad_scores(override, error):
    assert bad("judge_sqa", judge_json("judge_sqa", **override)) == error


def test_judge_bad_outputs():
    d = json.loads(judge_json("judge_sqa"))
    del d["leakage"]
    assert bad("judge_sqa", json.dumps(d)) == "missing score 'leakage'"
    raw = judge_json("judge_sqa")
    assert raw[:57].endswith('"hallucination": 8')
    assert bad("judge_sqa", raw[:57]) == "invalid JSON at char 57 (truncated?)"  # cut after a score
    assert bad("judge_sqa", raw[:30]) == "invalid JSON at char 16 (truncated?)"  # cut inside the explanation
    assert bad("judge_sqa", "The sample is good, I give it 8.") == "no JSON object found"
    assert bad("judge_sqa", "NULL") == "NULL answer"
    assert bad("judge_sqa", "[1, 2]") == "no JSON object found"
    assert bad("judge_sqa", '{"explanation": "x", "hallucination": 8,, "coverage": 8}').startswith(
        "invalid JSON at char 40: Expecting property name")
    assert bad("judge_sqa", "") == "empty output"


def test_judge_xml_form():
    xml = "<explanation>Fine &amp; grounded.</explanation>\n" + "\n".join(
        f"<{d}>{n}</{d}>" for d, n in zip(DIMS["judge_sqa"], (8, 9, 10, 7, 6, 9)))
    f = ok("judge_sqa", "Here is my review:\n" + xml)
    assert f == {"explanation": "Fine & grounded.", "scores": dict(zip(DIMS["judge_sqa"], (8, 9, 10, 7, 6, 9)))}
    assert ok("judge_sqa", xml.upper().replace("FINE &AMP; GROUNDED.", "x"))["scores"]["leakage"] == 6
    assert bad("judge_sqa", xml.replace("<leakage>6</leakage>", "")) == "missing score 'leakage'"
    assert bad("judge_sqa", xml.replace("<leakage>6</leakage>", "<leakage>12</leakage>")) == \
        "score 'leakage'=12 outside 1..10"
    assert bad("judge_sqa", xml.replace(">7<", ">seven<")) == "score 'novelty'='seven' is not an integer"
    # the last score cut off without its closing tag still reads
    assert ok("judge_sqa", xml.replace("9</overall>", "9"))["scores"]["overall"] == 9


@pytest.mark.parametrize("kind", [k for k in all_kinds() if load_spec(k).format == "xml"])
def test_xml_regex_accepts_the_formats_the_parser_reads(kind):
    s = load_spec(kind)
    regex = re.compile(structured_output(s)["regex"])
    long_text = " ".join(["Some text, with a comma."] * max(1, (s.min_words or 0) // 5))
    values = {s.tags[-1]: long_text, "quality": "high", "harmless": "yes"}
    answer = "\n".join(f"<{t}>{values.get(t, 'Some text, with a comma.')}</{t}>" for t in s.tags)
    assert regex.fullmatch(answer) and parse_output(s, answer).ok
    if "<data>" in s.instruction:
        assert regex.fullmatch(f"<data>\n{answer}\n</data>")
    assert bool(regex.fullmatch("NULL")) == s.allow_null
    assert not regex.fullmatch(answer.replace(f"</{s.tags[0]}>", ""))
