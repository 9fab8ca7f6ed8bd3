"""The people the simulate service can simulate: every user of a run, loaded as build-sft loads them.

`People.load(cfg)` reads the run's curated events, synthesis annotations and judgements through the same
function as build-sft (`sft.stage.load_bundles`: the inputs root, the synthesis platforms, only accepted
annotations) and keeps each user's `UserBundle`.

What it exposes is pseudonymous: user ids (a keyed hash of platform and author, PRIVACY.md), platforms,
counts of events by kind, first/last timestamps, the simulate tasks a person's data supports and whether
persona, profile, style and story annotations exist. Never a text, a title, an event id or a context
field (those hold other people's posts and names); the bundles themselves go only to the prompt builder.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, TYPE_CHECKING

from sft.bundle import UserBundle
from sft.settings import SFTConfig
from simulate.tasks import build, SimPrompt, SimulateRequest, supported

if TYPE_CHECKING:
    from core.layout import RunLayout
    from ray_jobs.config import PipelineConfig


class UnknownPerson(KeyError):
    """No person with this id in the run (the service answers 404)."""

    def __init__(self, user_id: str):
        super().__init__(user_id)
        self.user_id = user_id

    def __str__(self) -> str:
        return f"unknown person {self.user_id!r}: no user with this id in the run's curated events"


def _iso(post_ts) -> str | None:
    return post_ts.isoformat() if post_ts is not None else None


class People:
    """Every user's bundle of one run, by pseudonymous user id.

    Memory: holds every curated event of the run's synthesis platforms (text, title, context and meta
    JSON, tags) and every accepted user- and post-level annotation, as Python objects (the UserBundles of
    build-sft): a few times the uncompressed size of the run's events/ and accepted annotations. Nothing
    else: no examples, no model, no raw author names (curation never writes them)."""

    def __init__(self, bundles: Iterable[UserBundle], settings: SFTConfig | None = None):
        self.settings = settings or SFTConfig()
        self._bundles: dict[str, UserBundle] = {}
        for b in bundles:
            if b.user_id in self._bundles:
                first = self._bundles[b.user_id].platform
                raise ValueError(f"user {b.user_id!r} appears in two curated shards ({first} and {b.platform}): "
                                 "a shard must hold whole users")
            self._bundles[b.user_id] = b
        self._order = sorted(self._bundles)
        self._tasks = {u: supported(b, self.settings) for u, b in self._bundles.items()}

    @classmethod
    def load(cls, cfg: PipelineConfig, layout: RunLayout | None = None) -> People:
        """Every user of the run root `cfg` names (its `sft.inputs` root when set), read as build-sft reads them."""
        from sft.stage import load_bundles

        return cls(load_bundles(cfg, layout), cfg.sft)

    def __len__(self) -> int:
        return len(self._bundles)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._bundles

    def get(self, user_id: str) -> UserBundle:
        """The person's bundle; UnknownPerson when the run has no such user."""
        try:
            return self._bundles[user_id]
        except (KeyError, TypeError):
            raise UnknownPerson(user_id) from None

    def _entry(self, b: UserBundle) -> dict:
        by_kind = Counter(p.kind for p in b.posts)
        stamps = [p.ts for p in b.posts if p.ts is not None]
        return {"user_id": b.user_id, "platform": b.platform, "n_events": len(b.posts),
                "events_by_kind": dict(sorted(by_kind.items())),
                "first_ts": _iso(min(stamps)) if stamps else None, "last_ts": _iso(max(stamps)) if stamps else None,
                "tasks": list(self._tasks[b.user_id])}

    def list(self, platform: str | None = None, limit: int = 100) -> list[dict]:
        """Up to `limit` people (of `platform`, or every platform), in user-id order: pseudonymous id,
        platform, event counts by kind, first and last timestamp (ISO 8601), supported simulate tasks."""
        if limit < 0:
            raise ValueError(f"limit must be at least 0, got {limit}")
        out: list[dict] = []
        for user_id in self._order:
            if len(out) >= limit:
                break
            b = self._bundles[user_id]
            if platform is None or b.platform == platform:
                out.append(self._entry(b))
        return out

    def summary(self, user_id: str) -> dict:
        """One person for GET /v1/people/{id}: the list entry plus the time span in days, which annotations
        exist and how many posts carry accepted annotations. No text of anyone, no event ids."""
        b = self.get(user_id)
        out = self._entry(b)
        stamps = [p.ts for p in b.posts if p.ts is not None]
        out["span_days"] = round((max(stamps) - min(stamps)).total_seconds() / 86400, 3) if stamps else None
        out["annotations"] = {"persona": bool(b.persona), "profile": bool(b.profile),
                              "writing_style": bool(b.writing_style), "stories": bool(b.stories)}
        out["annotated_posts"] = sum(1 for p in b.posts if p.annotations)
        return out

    def build(self, req: SimulateRequest) -> SimPrompt:
        """The request's prompt with the run's SFT settings (UnknownPerson, Unsupported)."""
        return build(self.get(req.user_id), req, self.settings)
