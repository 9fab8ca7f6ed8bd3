"""Item selection (Amazon, PAPER.md 5): from the person and/or their purchases, pick the item they bought
next among 20 candidates (the true item and 19 items they never bought, shuffled).

The prompt is rendered by `item_selection_prompt` from its chosen inputs; the builder chooses them
from a held-out purchase, the simulate service (choose) from a live request's candidates."""
from __future__ import annotations

from typing import Iterator

from sft.bundle import Post, qualified, UserBundle
from sft.common import BuildContext, choose_person, Example, person_values
from sft.settings import SFTConfig
from sft.wording import render


def _target_index(reviews: list[Post], ctx: BuildContext) -> int:
    """The last qualified review if it is at index >= item_min_index, else the last review."""
    include = ctx.cfg.untagged_posts == "include"
    good = [i for i, p in enumerate(reviews) if qualified(p, include)]
    return good[-1] if good and good[-1] >= ctx.cfg.item_min_index else len(reviews) - 1


def purchases(b: UserBundle) -> list[Post]:
    """The user's reviews of known items (each a purchase), oldest first."""
    return [p for p in b.posts if p.kind == "review" and p.item_id]


def purchased(reviews: list[Post], limit: int, exclude: str | None = None) -> list[str]:
    """The names of the items bought (each once, oldest first), the latest `limit`; `exclude` left out."""
    return list(dict.fromkeys(p.item_name for p in reviews if p.item_name != exclude))[-limit:]


def item_selection_prompt(eid: str, cfg: SFTConfig, mode: str, person: tuple[str, str] | None, history: list[str],
                          candidates: list[str]) -> str:
    """The item-selection prompt: the person (mode persona/both) and/or the purchase history (history/both),
    then the numbered candidates. The SFT builder and the simulate service (choose) render here."""
    parts: list[str] = []
    if not cfg.person_context:
        mode = "none"
    if mode in ("persona", "both"):
        parts.append(render("item_selection_persona", eid, **person_values(*person)))
    if mode in ("history", "both") and history:
        parts.append(render("item_selection_history", eid, history="\n".join(f"- {h}" for h in history)))
    return render("item_selection", eid, context="\n\n".join(parts), n=len(candidates),
                  candidates="\n".join(f"{i}. {c}" for i, c in enumerate(candidates, 1))).strip()


def item_selection(b: UserBundle, ctx: BuildContext) -> Iterator[Example]:
    """Persona/profile and/or up to 30 purchased titles (50/15/35%) + 20 candidates -> the next item."""
    task = "item_selection"
    cfg = ctx.cfg
    reviews = purchases(b)
    if not reviews:
        return
    t = _target_index(reviews, ctx)
    target = reviews[t]
    eid = ctx.example_id(task, b, target.event_id)
    rng = ctx.rng(eid)
    modes, weights = zip(*sorted(cfg.item_inputs.items()))
    mode = rng.choices(modes, weights=weights)[0]
    person = choose_person(b, rng)
    history = purchased(reviews[:t], cfg.item_history, exclude=target.item_name)
    if mode != "history" and person is None:
        mode = "history"  # no accepted persona/profile: the history alone
    if mode == "history" and not history:
        if person is None:
            ctx.skip(task, "no earlier purchase and no persona or profile")
            return
        mode = "persona"
    bought = {p.item_name for p in reviews}
    pool = sorted({name for name in ctx.items.values() if name and name not in bought})
    need = cfg.item_candidates - 1
    if len(pool) < need:
        ctx.skip(task, f"fewer than {need} items the user never bought")
        return
    candidates = rng.sample(pool, need) + [target.item_name]
    rng.shuffle(candidates)
    text = item_selection_prompt(eid, cfg, mode, person, history, candidates)
    yield ctx.example(eid, task, b, target.event_id, target.ts, text, target.item_name)
