"""Peer of the reader benchmark: the same file loaded by mx.load and fully
touched; median of 5. (Python safetensors goes through numpy, which has no
bfloat16, so it cannot load this file.)"""
import json
import statistics
import sys
import time

import mlx.core as mx

path = sys.argv[1]


def mlx_load():
    arrays = mx.load(path)
    total = 0
    for a in arrays.values():
        mx.eval(a.view(mx.uint32).sum())
        total += a.nbytes
    return total


out = {}
for name, fn in [("mx_load", mlx_load)]:
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        total = fn()
        times.append(time.perf_counter() - t0)
    out[name + "_GBps"] = round(total / 1e9 / statistics.median(times), 2)
print(json.dumps(out))
