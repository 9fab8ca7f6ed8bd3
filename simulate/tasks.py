"""The prompt layer of the simulate service: a live request about one person becomes the chat request the
matching SFT task would have built for that person, rendered by the SFT builder's own prompt function
(sft/writing_tasks.py, item_tasks.py, post_tasks.py) and wordings (sft/prompts), so one place builds both.

| task      | SFT task (its wording in sft/prompts)                      | the live input (`situation`)    |
|-----------|------------------------------------------------------------|---------------------------------|
| next_post | writing_imitation_type1 (writing.yaml);                    | an optional topic               |
|           | Amazon: review_imitation_type1 (reviews.yaml)              | Amazon: the item reviewed       |
| comment   | personalized_comment (comment.yaml), Reddit                | the post replied to             |
| rate      | review_imitation_type1 (reviews.yaml) + `rate_instruction` | the item's title                |
| choose    | item_selection (item_selection.yaml), Amazon               | `candidates`                    |
| think     | thoughts (scenarios.yaml): the inner-thought scenario task | the situation                   |
| explain   | sqa_reason (social_qa.yaml): the social-QA reason variant  | a past action (event id, quote) |

No SFT task predicts ratings: `rate` is review imitation type 1 (the past reviews carry their stars)
followed by a rating question from simulate/prompts/simulate.yaml, answered as JSON.

Where the SFT builder draws its inputs from a held-out post, a simulate prompt takes them from the request
and from the person's latest data, deterministically: the latest `sft.history_posts[1]` posts of the
kinds the SFT task shows, the persona or profile and the paraphrase picked by the request's stable id
(`SimPrompt.example_id`, the SFT example id scheme with the request as subject; for `explain` the past
action's own example id, so the prompt is the SFT example's). The target length said in the prompt is
that of the person's median shown post (text tasks) or a fixed default (think, explain).

The user message is the SFT prompt (for `rate`, plus the rating question). The system message names the
person's persona, profile, writing style and recent posts where the SFT prompt does not show them, and
the answer format of the structured tasks (also enforced by `response_format`).
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import get_args, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, ValidationInfo

from sft.bundle import Post, UserBundle, writable
from sft.common import about, BuildContext, choose_person, cut_words, date_of, n_words, person_values, post_body
from sft.item_tasks import item_selection_prompt, purchased, purchases
from sft.post_tasks import scenario_prompt, social_qa_prompt
from sft.registry import ALL, TASKS as SFT_TASKS
from sft.settings import SFTConfig
from sft.wording import render
from sft.writing_tasks import (comment_posts, comment_prompt, history_block, imitation_posts, imitation_prompt,
                               PLATFORM_NAMES)

TaskName = Literal["next_post", "comment", "rate", "choose", "think", "explain"]
TASKS: tuple[str, ...] = get_args(TaskName)
PROMPTS = Path(__file__).resolve().with_name("prompts")
STRUCTURED = ("rate", "choose")
DEFAULT_WORDS = {"think": 100, "explain": 50, "post": 50}  # no target to measure: the length asked for
MAX_SITUATION_CHARS = 20_000
MAX_CANDIDATES = 100
MAX_CANDIDATE_CHARS = 500
QUOTE_WORDS = 3  # an explain request may name its past action by a quote of at least this many words


def sft_task(task: str, platform: str) -> str:
    """The SFT task whose prompt function and wording build `task` on `platform`."""
    return {"next_post": "review_imitation_type1" if platform == "amazon" else "writing_imitation_type1",
            "comment": "personalized_comment", "rate": "review_imitation_type1", "choose": "item_selection",
            "think": "thoughts", "explain": "sqa_reason"}[task]


def platforms_of(task: str) -> tuple[str, ...]:
    """The platforms a simulate task runs on: those its SFT task is built on (sft/registry.py)."""
    return tuple(p for p in ALL if any(t.name == sft_task(task, p) and p in t.platforms for t in SFT_TASKS))


class Unsupported(ValueError):
    """The person's data or the request cannot support the task; `missing` says what is missing
    (the service answers 422 with it)."""

    def __init__(self, task: str, missing: str):
        self.task, self.missing = task, missing
        super().__init__(f"{task}: needs {missing}")


class SimulateRequest(BaseModel):
    """One simulate request. `situation`: next_post the topic (optional; Amazon: the item reviewed),
    comment the post to reply to, rate the item's title, think the situation, explain the past action
    (its event id or a quote of its text); `candidates`: choose's items (2 or more, distinct)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: str = Field(min_length=1, max_length=200)
    platform: str
    task: TaskName
    situation: str | None = Field(None, max_length=MAX_SITUATION_CHARS)
    candidates: list[str] | None = Field(None, max_length=MAX_CANDIDATES)
    n: int = Field(1, ge=1, le=8)

    @field_validator("platform")
    @classmethod
    def _known_platform(cls, value: str) -> str:
        if value not in ALL:
            raise ValueError(f"unknown platform {value!r}; the platforms are {', '.join(ALL)}")
        return value

    @field_validator("situation")
    @classmethod
    def _situation(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("task") == "choose":
            raise ValueError("choose takes no situation (the item-selection prompt has no place for one)")
        return value or None

    @field_validator("candidates")
    @classmethod
    def _candidates(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        if info.data.get("task") not in (None, "choose"):
            raise ValueError("only the choose task takes candidates")
        for c in value:
            if not c:
                raise ValueError("a candidate is empty")
            if len(c) > MAX_CANDIDATE_CHARS:
                raise ValueError(f"a candidate is longer than {MAX_CANDIDATE_CHARS} characters")
        if len(set(value)) < len(value):
            raise ValueError("the candidates are not distinct")
        return value


def _response_format(task: str, candidates: tuple[str, ...]) -> dict | None:
    """OpenAI-style `response_format` (JSON schema) of a structured task; None for text tasks."""
    if task == "rate":
        name, props = "rating", {"rating": {"type": "integer", "minimum": 1, "maximum": 5}}
    elif task == "choose":
        name, props = "choice", {"choice": {"type": "string", "enum": list(candidates)}}
    else:
        return None
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": {
        "type": "object", "properties": props, "required": [name], "additionalProperties": False}}}


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


@dataclass(frozen=True)
class SimPrompt:
    """A built simulate prompt: the chat `messages` for /v1/chat/completions, the `response_format` of the
    structured tasks (rate, choose; else None), and `parse` for each answer."""

    task: str
    sft_task: str  # the SFT task whose prompt function and wording rendered the user message
    example_id: str  # the stable id that picked the paraphrase and the persona or profile
    messages: list[dict]
    response_format: dict | None
    words: int | None = None  # the length asked for (text tasks)
    candidates: tuple[str, ...] = ()

    @property
    def seed(self) -> int:
        """A sampling seed stable for the same person and request."""
        return int(self.example_id[:8], 16)

    def parse(self, text: str) -> dict:
        """The answer as a dict: {"rating": 1..5}, {"choice": one of the candidates}, or {"text": ...};
        a malformed structured answer is a ValueError saying what is wrong."""
        if self.task not in STRUCTURED:
            return {"text": text.strip()}
        raw = text.strip()
        fenced = _FENCE.match(raw)
        raw = fenced.group(1) if fenced else raw
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.task}: the answer is not JSON ({exc.msg}): {text[:200]!r}") from None
        key = "rating" if self.task == "rate" else "choice"
        if not isinstance(value, dict) or set(value) != {key}:
            raise ValueError(f"{self.task}: the answer must be an object with exactly the key {key!r}: {text[:200]!r}")
        got = value[key]
        if self.task == "rate":
            if isinstance(got, bool) or not isinstance(got, int) or not 1 <= got <= 5:
                raise ValueError(f"rate: the rating must be a whole number from 1 to 5, got {got!r}")
        elif got not in self.candidates:
            raise ValueError(f"choose: the choice must be one of the {len(self.candidates)} candidates, got {got!r}")
        return {key: got}


def _history_posts(b: UserBundle, cfg: SFTConfig) -> list[Post]:
    """The person's posts (reviews on Amazon) the system message may show, oldest first."""
    include = cfg.untagged_posts == "include"
    return [p for p in b.posts if writable(p, include) and (b.platform != "amazon" or p.kind == "review")]


def _latest(posts: list[Post], cfg: SFTConfig) -> list[Post]:
    """The latest posts a simulate prompt shows: as many as the SFT builders show at most."""
    k = min(len(posts), cfg.history_posts[1])
    return posts[len(posts) - k:] if k else []


def _words(shown: list[Post], reviews: bool) -> int:
    """The length asked for: that of the median shown post (the SFT prompts say the target's)."""
    if not shown:
        return DEFAULT_WORDS["post"]
    body = (lambda p: p.text.strip()) if reviews else post_body
    ordered = sorted(shown, key=lambda p: (n_words(body(p)), p.event_id))
    return about(body(ordered[len(ordered) // 2]))


def _lacks(b: UserBundle, task: str, cfg: SFTConfig) -> str | None:
    """What the person's data lacks for `task` (None: it supports it)."""
    if b.platform not in platforms_of(task):
        where = " or ".join(platforms_of(task))
        return f"a person on {where} (the {sft_task(task, b.platform)} SFT task is built there)"
    if task in ("comment", "think", "explain") and not b.person():
        return "an accepted persona or profile of the person"
    if task in ("next_post", "rate") and not imitation_posts(b, cfg, b.platform == "amazon"):
        return ("past reviews of the person that passed curation's quality tags" if b.platform == "amazon" else
                "past posts of the person (submissions, tweets or blog posts) that passed curation's quality tags")
    if task == "comment" and not comment_posts(b, cfg):
        return "past comments of the person that passed curation's quality tags"
    if task == "choose" and not purchases(b) and not b.person():
        return "a purchase history or an accepted persona or profile of the person"
    return None


def supported(b: UserBundle, settings: SFTConfig | None = None) -> list[str]:
    """The simulate tasks the person's data supports (a request may still lack its own inputs)."""
    cfg = settings or SFTConfig()
    return [t for t in TASKS if _lacks(b, t, cfg) is None]


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def _past_action(b: UserBundle, situation: str) -> Post | None:
    """The past post an explain request names: by event id, else the latest whose text holds the quote."""
    for post in b.posts:
        if post.event_id == situation:
            return post
    quote = _norm(situation)
    if len(quote.split()) < QUOTE_WORDS:
        return None
    found = [p for p in b.posts if quote in _norm(post_body(p))]
    return found[-1] if found else None


def _request_id(req: SimulateRequest) -> str:
    key = json.dumps([req.task, req.platform, req.situation, req.candidates], ensure_ascii=False)
    return "simulate:" + hashlib.sha1(key.encode()).hexdigest()[:16]


def _system(b: UserBundle, task: str, cfg: SFTConfig, eid: str, user_text: str, shows_history: bool) -> str:
    """The person card the user message does not already hold, and the answer format."""
    parts = [render("simulate_intro", eid, PROMPTS)]
    if cfg.person_context:
        for key, text, value in (("simulate_persona", b.persona, "person"), ("simulate_profile", b.profile, "person"),
                                 ("simulate_style", b.writing_style, "style")):
            if text and text not in user_text:
                parts.append(render(key, eid, PROMPTS, **{value: text}))
        if not shows_history and (shown := _latest(_history_posts(b, cfg), cfg)):
            reviews = b.platform == "amazon"
            parts.append(render("simulate_history_reviews" if reviews else "simulate_history", eid, PROMPTS,
                                platform=PLATFORM_NAMES[b.platform],
                                history=history_block(shown, reviews, cfg.history_words)))
    if task in STRUCTURED:
        parts.append(render("simulate_format_rating" if task == "rate" else "simulate_format_choice", eid, PROMPTS))
    return "\n\n".join(p.strip() for p in parts)


def build(bundle: UserBundle, req: SimulateRequest, settings: SFTConfig | None = None) -> SimPrompt:
    """The chat prompt of one request about `bundle`'s person, rendered by the matching SFT task's prompt
    function (`settings`: the run's `sft` settings, for its history bounds and person switch; default
    SFTConfig()). Raises Unsupported naming what the person's data or the request lacks."""
    cfg = settings or SFTConfig()
    b, task = bundle, req.task
    if req.user_id != b.user_id:
        raise ValueError(f"the request is about {req.user_id!r}, the bundle is {b.user_id!r}")
    if req.platform != b.platform:
        raise Unsupported(task, f"platform: this person's data is from {b.platform}, not {req.platform}")
    if (missing := _lacks(b, task, cfg)) is not None:
        raise Unsupported(task, missing)
    sft = sft_task(task, b.platform)
    reviews = b.platform == "amazon"
    situation, candidates = req.situation, tuple(req.candidates or ())
    words: int | None = None
    shows_history = task in ("next_post", "comment", "rate")
    if task in ("next_post", "rate"):
        if reviews and not situation:
            raise Unsupported(task, "situation: the title of the item " + ("rated" if task == "rate" else "reviewed"))
        eid = BuildContext(cfg).example_id(sft, b, _request_id(req))
        shown = _latest(imitation_posts(b, cfg, reviews), cfg)
        words = _words(shown, reviews)
        if reviews:
            topic = render("review_topic", eid, PROMPTS)
            text = imitation_prompt(sft, eid, cfg, b.platform, words, history=shown, item=situation, topic=topic)
        else:
            topic = situation or render("next_post_topic", eid, PROMPTS)
            text = imitation_prompt(sft, eid, cfg, b.platform, words, history=shown, topic=topic)
        if task == "rate":
            text += "\n\n" + render("rate_instruction", eid, PROMPTS, item=situation)
            words = None
    elif task == "comment":
        if not situation:
            raise Unsupported(task, "situation: the post to reply to")
        eid = BuildContext(cfg).example_id(sft, b, _request_id(req))
        person = choose_person(b, BuildContext(cfg).rng(eid))
        shown = _latest(comment_posts(b, cfg), cfg)
        words = _words(shown, False)
        text = comment_prompt(eid, cfg, person, shown, situation, words)
    elif task == "choose":
        if len(candidates) < 2:
            raise Unsupported(task, "candidates: at least 2 distinct items to choose from")
        eid = BuildContext(cfg).example_id(sft, b, _request_id(req))
        person = choose_person(b, BuildContext(cfg).rng(eid))
        history = purchased(purchases(b), cfg.item_history)
        mode = "both" if person and history else "persona" if person else "history"
        text = item_selection_prompt(eid, cfg, mode, person, history, list(candidates))
        shows_history = bool(history) and cfg.person_context
    elif task == "think":
        if not situation:
            raise Unsupported(task, "situation: the situation the person thinks about")
        eid = BuildContext(cfg).example_id(sft, b, _request_id(req))
        person = choose_person(b, BuildContext(cfg).rng(eid))
        words = DEFAULT_WORDS["think"]
        characters = render("think_characters", eid, PROMPTS, **person_values(*person))
        text = scenario_prompt(sft, eid, {"background": situation, "characters": characters}, words)
    else:  # explain
        if not situation:
            raise Unsupported(task, "situation: the past action to explain (its event id, or a quote of at "
                                    f"least {QUOTE_WORDS} words from the person's post)")
        post = _past_action(b, situation)
        if post is None:
            raise Unsupported(task, f"situation: a past action of this person matching {situation[:80]!r} "
                                    f"(its event id, or a quote of at least {QUOTE_WORDS} words from their post)")
        eid = BuildContext(cfg).example_id(sft, b, post.event_id)  # the SFT example's own id
        person = choose_person(b, BuildContext(cfg).rng(eid))
        qa = post.annotations.get(sft)
        if qa is not None:
            words = about(qa["answer"])
            scenario, question = qa["scenario"], qa["question"]
        else:
            words = DEFAULT_WORDS["explain"]
            scenario = render("explain_scenario", eid, PROMPTS, date=date_of(post), platform=PLATFORM_NAMES[b.platform],
                              body=cut_words(post_body(post), cfg.history_words))
            question = render("explain_question", eid, PROMPTS)
        text = social_qa_prompt(eid, cfg, person, scenario, question, words)
    messages = [{"role": "system", "content": _system(b, task, cfg, eid, text, shows_history)},
                {"role": "user", "content": text}]
    return SimPrompt(task, sft, eid, messages, _response_format(task, candidates), words, candidates)
