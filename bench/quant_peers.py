"""Peer of the quantization benchmark: mx.quantize on the CPU stream for a
bf16 tensor of the same shape; median of 7, in GB/s of bf16 input."""
import json
import statistics
import sys
import time

import mlx.core as mx

rows, cols, bits, gs = (int(x) for x in sys.argv[1:5])
mx.set_default_device(mx.cpu)
w = (mx.random.normal((rows, cols)) * 0.05).astype(mx.bfloat16)
mx.eval(w)
times = []
for _ in range(7):
    t0 = time.perf_counter()
    mx.eval(*mx.quantize(w, group_size=gs, bits=bits))
    times.append(time.perf_counter() - t0)
print(json.dumps({"mx_quantize_cpu_GBps": round(rows * cols * 2 / 1e9 / statistics.median(times), 3)}))
