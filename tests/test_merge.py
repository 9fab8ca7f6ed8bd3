"""The streaming merge: equal to the in-memory average (every dtype kept), and its peak memory bounded
by a fraction of one shard, measured in a separate process on models of several shards."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from train.merge import average_state_dicts, merge_models

REPO = Path(__file__).resolve().parent.parent
MB = 2**20


def _model(out: Path, seed: int, shards: int, tensors_per_shard: int, floats: int) -> dict[str, torch.Tensor]:
    """A sharded safetensors model folder (index + shards) of random fp32 and bf16 tensors, an int64
    buffer and a scalar; returns all its tensors."""
    g = torch.Generator().manual_seed(seed)
    out.mkdir(parents=True)
    everything, weight_map = {}, {}
    for s in range(shards):
        part = {f"layers.{s}.w{i}": torch.randn(floats, generator=g) for i in range(tensors_per_shard)}
        part[f"layers.{s}.norm"] = torch.randn(64, generator=g).to(torch.bfloat16)
        part[f"layers.{s}.step"] = torch.tensor([seed + s], dtype=torch.int64)
        part[f"layers.{s}.scale"] = torch.tensor(float(seed + 1))
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, str(out / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in part})
        everything.update(part)
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (out / "config.json").write_text("{}")
    return everything


def test_streamed_merge_equals_the_in_memory_average(tmp_path):
    tuned = _model(tmp_path / "tuned", 1, shards=3, tensors_per_shard=3, floats=1000)
    _model(tmp_path / "base", 2, shards=2, tensors_per_shard=3, floats=1000)  # one layer fewer: not its base
    with pytest.raises(ValueError, match="differ in"):
        merge_models(str(tmp_path / "tuned"), str(tmp_path / "base"), str(tmp_path / "bad"))
    base = _model(tmp_path / "base3", 2, shards=3, tensors_per_shard=3, floats=1000)
    out = merge_models(str(tmp_path / "tuned"), str(tmp_path / "base3"), str(tmp_path / "merged"), (0.3, 0.7))
    expected = average_state_dicts(tuned, base, (0.3, 0.7))
    got = {}
    for f in sorted(Path(out).glob("*.safetensors")):
        got.update(load_file(str(f)))
    assert got.keys() == expected.keys()
    for name, t in expected.items():
        assert got[name].dtype == tuned[name].dtype, name
        torch.testing.assert_close(got[name], t, rtol=0, atol=0)
    assert got["layers.0.step"].tolist() == [1]  # integer tensors come from the tuned model
    assert (Path(out) / "config.json").exists() and (Path(out) / "model.safetensors.index.json").exists()
    with pytest.raises(ValueError, match="sum to 1"):
        merge_models(str(tmp_path / "tuned"), str(tmp_path / "base3"), str(tmp_path / "m2"), (0.5, 0.6))


PEAK = """
import json, sys
import torch  # imported before the baseline: the fixed overhead is not the merge's
from core.shards import PeakRSS
from train.merge import merge_models
with PeakRSS() as idle:
    pass
with PeakRSS() as peak:  # samples resident memory every 20 ms while the merge runs
    merge_models(sys.argv[1], sys.argv[2], sys.argv[3])
print(json.dumps({"before_mb": idle.mb, "peak_mb": peak.mb}))
"""


def test_streamed_merge_peak_memory_is_below_one_and_a_half_shards(tmp_path):
    """Two models of 3 shards x 64 MB: the merge's peak RSS growth stays under 1.5 x 64 MB (it holds a
    few 8 MB tensors, never a shard); the in-memory merge would need both models (~384 MB)."""
    floats = 2 * MB  # 8 MB per fp32 tensor, 8 per shard: 64 MB shards
    _model(tmp_path / "tuned", 1, shards=3, tensors_per_shard=8, floats=floats)
    _model(tmp_path / "base", 2, shards=3, tensors_per_shard=8, floats=floats)
    shard_mb = max(f.stat().st_size for f in (tmp_path / "tuned").glob("*.safetensors")) / MB
    proc = subprocess.run([sys.executable, "-c", PEAK, str(tmp_path / "tuned"), str(tmp_path / "base"),
                           str(tmp_path / "merged")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    growth_mb = r["peak_mb"] - r["before_mb"]
    print(f"largest shard {shard_mb:.1f} MB, merge peak RSS growth {growth_mb:.1f} MB")
    assert growth_mb < 1.5 * shard_mb, (growth_mb, shard_mb)
