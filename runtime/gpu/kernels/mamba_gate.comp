// mamba_gate.comp - the Mamba-2 output gate and grouped RMSNorm
// (gpu_abi.h): y = rmsnorm_group(y * silu(z)) * weight, one workgroup per
// group, strided sums of squares meeting in shared memory.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_MAMBA_THREADS) in;
layout(std430, binding = KT_MAMBA_GATE_BIND_PROJ) readonly buffer Proj { float proj[]; };
layout(std430, binding = KT_MAMBA_GATE_BIND_WEIGHT) readonly buffer Weight { float gnorm[]; };
layout(std430, binding = KT_MAMBA_GATE_BIND_Y) buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_MAMBA_ARGS(uint) } args;

shared float partial[KT_MAMBA_THREADS];

void main() {
    uint inner = args.heads * args.head_dim, per = inner / args.groups, base = gl_WorkGroupID.x * per;
    uint yb = args.y_offset + base;
    uint lid = gl_LocalInvocationID.x;
    float ss = 0.0;
    for (uint i = lid; i < per; i += KT_MAMBA_THREADS) {
        float z = proj[args.proj_offset + base + i];
        float v = y[yb + i] * (z / (1.0 + exp(-z)));
        y[yb + i] = v;
        ss += v * v;
    }
    partial[lid] = ss;
    barrier();
    for (uint stride = KT_MAMBA_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier();
    }
    float inv = 1.0 / sqrt(partial[0] / float(per) + uintBitsToFloat(args.eps_bits));
    for (uint i = lid; i < per; i += KT_MAMBA_THREADS) y[yb + i] = y[yb + i] * inv * gnorm[base + i];
}
