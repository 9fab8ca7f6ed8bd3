"""Post-level SFT tasks from accepted annotations (PAPER.md 5): the four social-QA variants and the
scenario, story, behaviour-story and thoughts generations. Their prompts are rendered by
`social_qa_prompt` and `scenario_prompt`, which the simulate service (explain, think) calls too."""
from __future__ import annotations

from typing import Iterator

from sft.bundle import UserBundle
from sft.common import about, BuildContext, choose_person, Example, person_values
from sft.settings import SFTConfig
from sft.wording import render

SQA_TASKS = ("sqa_general", "sqa_thoughts", "sqa_actions", "sqa_reason")
# task -> (inputs, target) fields of its annotation
SCENARIO_FIELDS = {
    "long_scenario": (("summary", "characters"), "scenario"),
    "single_story": (("background", "characters"), "plots"),
    "behavior_story": (("background", "characters"), "story"),
    "thoughts": (("background", "characters"), "thoughts"),
}


def social_qa_prompt(eid: str, cfg: SFTConfig, person: tuple[str, str], scenario: str, question: str,
                     words: int) -> str:
    """The social-QA prompt (every variant: the question carries it) for a persona or profile."""
    return render("social_qa" if cfg.person_context else "social_qa_no_person", eid,
                  scenario=scenario, question=question, words=words, **person_values(*person))


def scenario_prompt(task: str, eid: str, values: dict, words: int) -> str:
    """The prompt of a scenario/story task from its annotation's input fields (SCENARIO_FIELDS)."""
    return render(task, eid, words=words, **{k: values[k] for k in SCENARIO_FIELDS[task][0]})


def social_qa(task: str):
    """The builder of one social-QA variant: persona or profile (at random) + scenario + question -> answer."""

    def build(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
        for post in b.posts:
            qa = post.annotations.get(task)
            if qa is None:
                continue
            eid = ctx.example_id(task, b, post.event_id)
            chosen = choose_person(b, ctx.rng(eid))
            if chosen is None:
                ctx.skip(task, "needs an accepted persona or profile")
                continue
            text = social_qa_prompt(eid, ctx.cfg, chosen, qa["scenario"], qa["question"], about(qa["answer"]))
            yield ctx.example(eid, task, b, post.event_id, post.ts, text, qa["answer"])

    build.__name__ = build.__qualname__ = task
    build.__doc__ = f"Social QA ({task}): persona or profile + scenario + question -> third-person answer."
    return build


def scenario(task: str):
    """The builder of one scenario/story task: its annotation's inputs -> its long text."""
    inputs, target_field = SCENARIO_FIELDS[task]

    def build(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
        for post in b.posts:
            ann = post.annotations.get(task)
            if ann is None:
                continue
            eid = ctx.example_id(task, b, post.event_id)
            target = ann[target_field]
            text = scenario_prompt(task, eid, ann, about(target))
            yield ctx.example(eid, task, b, post.event_id, post.ts, text, target)

    build.__name__ = build.__qualname__ = task
    build.__doc__ = f"{task}: {' + '.join(inputs)} -> {target_field}."
    return build
