"""Damaged conversions for the behavioural gate's tests and for
bench/gate_bounds.py: a conversion whose every quantized tensor differs from
RTN by a known amount of noise."""
import glob
import os
import shutil

import mlx.core as mx
import numpy as np


def noisy_copy(src, dst, amp, biases, seed):
    """SRC copied to DST with each scale (and, with BIASES, each bias) times
    1 + U(-AMP, AMP), drawn from numpy's generator seeded SEED over the files
    and names in sorted order, and stored back in its dtype. Returns DST."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    for f in sorted(glob.glob(os.path.join(dst, "*.safetensors"))):
        w, meta = mx.load(f, return_metadata=True)
        for k in sorted(w):
            if k.endswith(".scales") or (biases and k.endswith(".biases")):
                n = mx.array(rng.uniform(-amp, amp, w[k].shape).astype(np.float32))
                w[k] = (w[k].astype(mx.float32) * (1 + n)).astype(w[k].dtype)
        mx.save_safetensors(f, w, metadata=meta)
    return str(dst)
