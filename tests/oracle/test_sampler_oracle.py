"""kintsugi-run's sampler against mlx-lm's own functions on the same logits
(mlx_lm/sample_utils.py): the repetition penalty (once per distinct token of
the last 20), and the set of tokens that top-p, min-p and top-k leave, in
mlx-lm's order, on the log-probabilities at temperature 1. The random draw
itself is ours (seeded), so the test compares what may be drawn, exactly."""
import json
import random

import mlx.core as mx
import numpy as np
import pytest

from conftest import TESTTOOL, run


def mlx_side(case):
    from mlx_lm.sample_utils import apply_min_p, apply_top_k, apply_top_p, make_repetition_penalty
    logits = mx.array([case["logits"]], dtype=mx.float32)
    if case.get("repetition_penalty", 1) != 1:
        logits = make_repetition_penalty(case["repetition_penalty"], 20)(mx.array(case["history"]), logits)
    penalized = np.array(logits[0])
    lp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    if 0 < case.get("top_p", 1) < 1:
        lp = apply_top_p(lp, case["top_p"])
    if case.get("min_p", 0) != 0:
        lp = apply_min_p(lp, case["min_p"])
    if case.get("top_k", 0) > 0:
        lp = apply_top_k(lp, case["top_k"])
    return penalized, np.isfinite(np.array(lp[0]))


def cases():
    rng = random.Random(11)
    out = []
    for i in range(120):
        n = rng.choice([8, 50, 300, 2000])
        scale = rng.choice([0.5, 3.0, 12.0])
        logits = [rng.gauss(0, scale) for _ in range(n)]
        history = [rng.randrange(n) for _ in range(rng.choice([0, 5, 30, 64]))]
        if history:
            history += history[-3:]  # repeats: the penalty applies once per distinct token
        case = {"logits": logits, "history": history}
        kind = i % 6
        if kind in (0, 5):
            case["top_p"] = rng.choice([0.1, 0.5, 0.9, 0.99])
        if kind in (1, 5):
            case["min_p"] = rng.choice([0.01, 0.05, 0.2, 0.7])
        if kind in (2, 5):
            case["top_k"] = rng.randrange(1, n)
        if kind in (3, 4, 5):
            case["repetition_penalty"] = rng.choice([1.1, 1.5, 3.0, 0.8])
        out.append(case)
    return out


def test_filters_and_penalty_equal_mlx_lm(tmp_path):
    mx.set_default_device(mx.cpu)
    cs = cases()
    f = tmp_path / "cases.json"
    f.write_text(json.dumps(cs))
    ours = json.loads(run([TESTTOOL, "sample", str(f)]).stdout)
    bad = []
    for i, (case, o) in enumerate(zip(cs, ours)):
        pen, keep = mlx_side(case)
        if not np.array_equal(np.array(o["penalized"], dtype=np.float32), pen.astype(np.float32)):
            bad.append((i, "penalty"))
        if not np.array_equal(np.array(o["keep"], dtype=bool), keep):
            diff = np.nonzero(np.array(o["keep"], dtype=bool) != keep)[0][:5]
            bad.append((i, {k: case[k] for k in case if k not in ("logits", "history")}, diff.tolist()))
    assert not bad, bad[:10]
