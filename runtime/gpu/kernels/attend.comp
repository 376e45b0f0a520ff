// attend.comp - one token's attention over the KV cache (gpu_abi.h), one
// workgroup per query head: scores for the positions in turn, their maximum
// and sum meeting in shared memory, then each thread a share of the output
// dimensions over all positions.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_ATTEND_THREADS) in;
layout(std430, binding = KT_ATTEND_BIND_Q) readonly buffer Q { float q[]; };
layout(std430, binding = KT_ATTEND_BIND_K) readonly buffer K { float kc[]; };
layout(std430, binding = KT_ATTEND_BIND_V) readonly buffer V { float vc[]; };
layout(std430, binding = KT_ATTEND_BIND_SCORES) buffer Scores { float sc[]; };
layout(std430, binding = KT_ATTEND_BIND_O) writeonly buffer O { float o[]; };
layout(push_constant) uniform Args { KT_ATTEND_ARGS(uint) } args;

shared float red[KT_ATTEND_THREADS];

void main() {
    uint h = gl_WorkGroupID.x, lid = gl_LocalInvocationID.x;
    uint hd = args.head_dim, kvh = h / (args.heads / args.kv_heads), n = args.pos + 1u;
    uint base = h * n;
    float scale = 1.0 / sqrt(float(hd));
    float mx = -1.0 / 0.0;
    for (uint t = lid; t < n; t += KT_ATTEND_THREADS) {
        uint k0 = (t * args.kv_heads + kvh) * hd;
        float s = 0.0;
        for (uint i = 0u; i < hd; i++) s += q[args.q_offset + h * hd + i] * kc[k0 + i];
        s *= scale;
        sc[base + t] = s;
        mx = max(mx, s);
    }
    red[lid] = mx;
    barrier();
    for (uint stride = KT_ATTEND_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) red[lid] = max(red[lid], red[lid + stride]);
        barrier();
    }
    mx = red[0];
    barrier();
    float sum = 0.0;
    for (uint t = lid; t < n; t += KT_ATTEND_THREADS) {
        float e = exp(sc[base + t] - mx);
        sc[base + t] = e;
        sum += e;
    }
    red[lid] = sum;
    memoryBarrierBuffer();
    barrier();
    for (uint stride = KT_ATTEND_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) red[lid] += red[lid + stride];
        barrier();
    }
    sum = red[0];
    for (uint i = lid; i < hd; i += KT_ATTEND_THREADS) {
        float acc = 0.0;
        for (uint t = 0u; t < n; t++) acc += sc[base + t] / sum * vc[(t * args.kv_heads + kvh) * hd + i];
        o[args.o_offset + h * hd + i] = acc;
    }
}
