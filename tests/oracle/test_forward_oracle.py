"""runtime/forward.c against mlx-lm's nemotron_h in float32: the logits of
every position, on the original bf16 checkpoint and on our 4-bit conversion
of it, for Mamba-2, attention, MLP and MoE layers."""
import json
import os

import mlx.core as mx
import numpy as np
import pytest

from conftest import INT8, TESTTOOL, generate, run, tool

IDS = [1, 1200, 1300, 1400, 1500, 1010, 1600, 1700, 1250, 1999, 12, 1100]
# integer activations: the largest logit error, as a share of the largest logit (docs/PERFORMANCE.md)
INT8_LOGIT_BOUND = 0.10


def ours(path, ids):
    return np.array(json.loads(run([TESTTOOL, "logits", path, *map(str, ids)]).stdout))


def reference(path, ids):
    from mlx_lm import load
    model, _ = load(path)
    model.set_dtype(mx.float32)
    return np.array(model(mx.array([ids]))[0])


@pytest.mark.parametrize("options", [[], ["--ssm-dtype", "bf16"], ["--pattern", "M*M-*M-M", "--seed", "3"],
                                     ["--dtype-key", "--shards", "1"], ["--moe"], ["--moe", "--mtp", "--ssm-dtype", "bf16"]])
def test_logits_equal_mlx_lm(tmp_path, options):
    src = generate(tmp_path / "hf", *options)
    mlx = str(tmp_path / "mlx")
    run([tool("kintsugi-convert"), src, mlx, "--quiet", "--bits", "4"])
    for path in (src, mlx):
        got, ref = ours(path, IDS), reference(path, IDS)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), path
        assert (got.argmax(-1) == ref.argmax(-1)).all()
        # the whole prompt at once (matrix-matrix prefill) gives the last position's logits
        last = np.array(json.loads(run([TESTTOOL, "prefill", path, *map(str, IDS)]).stdout))
        assert np.abs(last - ref[-1]).max() <= 1e-4 * max(1.0, np.abs(ref).max()), path
        # every position of a batched pass continuing a copied state (perplexity, --choices)
        every = np.array(json.loads(run([TESTTOOL, "every", path, *map(str, IDS)]).stdout))
        assert every.shape == ref.shape
        assert np.abs(every - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), path


def test_what_is_not_supported_is_reported_not_guessed(tmp_path):
    src = generate(tmp_path / "hf", "--moe")
    cfg_path = os.path.join(src, "config.json")
    cfg = json.load(open(cfg_path))
    json.dump(dict(cfg, moe_latent_size=64), open(cfg_path, "w"))
    r = run([TESTTOOL, "logits", src, "1", "2"], check=False)
    assert r.returncode == 1 and "latent" in r.stderr


@pytest.mark.parametrize("bits", ["4", "8"])
def test_integer_activations_bounded_against_mlx_lm(tmp_path, bits):
    """The integer path (8-bit activations per block of 32) on a 4- and an
    8-bit conversion: every position's logits within a bounded distance of
    mlx-lm's float32 ones, token by token and as a prompt."""
    src = generate(tmp_path / "hf", "--pattern", "M*M-*M-M", "--seed", "5")
    mlx = str(tmp_path / "mlx")
    run([tool("kintsugi-convert"), src, mlx, "--quiet", "--bits", bits])
    ref = reference(mlx, IDS)
    exact = np.array(json.loads(run([TESTTOOL, "logits", mlx, *map(str, IDS)]).stdout))
    for mode in ("logits", "every"):
        got = np.array(json.loads(run([TESTTOOL, mode, mlx, *map(str, IDS)], env=INT8).stdout))
        err, scale = np.abs(got - ref).max(), np.abs(ref).max()
        assert 0 < err <= INT8_LOGIT_BOUND * scale, (mode, err, scale)  # not the float path, and close to it
        assert np.abs(exact - ref).max() < err  # the exact path is closer still
