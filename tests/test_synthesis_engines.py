"""The transformers `generate` actor pool engine of the synthesis stage on a local Ray (the OpenAI-compatible
HTTP engine is tested against `humanllm serve` in tests/test_serve.py)."""
from __future__ import annotations


import pytest

from core import schema as S
from core.layout import RunLayout
from core.storage import RunRoot
from synthesis.stage import run as run_synthesis
from tests.synth_fixtures import write_run_root
from tests.test_synthesis_vllm import vllm_config


def _answered_once(root: RunRoot, n: int) -> list[dict]:
    outputs = root.read_parquet(RunLayout.synth_outputs("tags"), schema=S.OUTPUT_SCHEMA).to_pylist()
    ann = root.read_parquet("annotations/tags", schema=S.ANNOTATION_SCHEMA)
    fail = root.read_parquet("failures/tags", schema=S.FAILURE_SCHEMA)
    ids = ann[S.ANNOTATION_ID].to_pylist() + fail[S.REQUEST_ID].to_pylist()
    assert len(ids) == len(set(ids)) == n
    assert all(o[S.PROMPT_TOKENS] > 0 and o[S.COMPLETION_TOKENS] > 0 for o in outputs)
    return outputs


@pytest.mark.slow
def test_transformers_actor_pool_engine(ray_cluster, tiny_model, tmp_path):
    path = str(tmp_path / "run")
    write_run_root(path)
    cfg = vllm_config(path, tiny_model, engine={"backend": "transformers", "concurrency": 1},
                      kinds=["tag_v2"], platforms=["amazon"])
    stats = run_synthesis(cfg, use_ray=True)
    outputs = _answered_once(RunRoot(path), 3)
    assert all(o[S.ENGINE] == "transformers" and not o[S.ENGINE_ERROR] for o in outputs)
    # no structured outputs in this fallback: a random model's answers fail to parse, with the reason
    assert stats["kinds"]["tag_v2"]["requests"] == 3
    fails = RunRoot(path).read_parquet("failures/tags", schema=S.FAILURE_SCHEMA).to_pylist()
    assert all(f[S.REASON] for f in fails)
