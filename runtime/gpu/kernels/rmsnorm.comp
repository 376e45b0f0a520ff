// rmsnorm.comp - y = x / sqrt(mean(x^2) + eps) * weight for one vector
// (gpu_abi.h), one workgroup: strided sums of squares meet in shared memory.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_RMSNORM_THREADS) in;
layout(std430, binding = KT_RMSNORM_BIND_X) readonly buffer X { float x[]; };
layout(std430, binding = KT_RMSNORM_BIND_WEIGHT) readonly buffer Weight { float weight[]; };
layout(std430, binding = KT_RMSNORM_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_RMSNORM_ARGS(uint) } args;

shared float partial[KT_RMSNORM_THREADS];

void main() {
    uint lid = gl_LocalInvocationID.x;
    float ss = 0.0;
    for (uint i = lid; i < args.n; i += KT_RMSNORM_THREADS) ss += x[args.x_offset + i] * x[args.x_offset + i];
    partial[lid] = ss;
    barrier();
    for (uint stride = KT_RMSNORM_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier();
    }
    float inv = inversesqrt(partial[0] / float(args.n) + uintBitsToFloat(args.eps_bits));
    for (uint i = lid; i < args.n; i += KT_RMSNORM_THREADS) y[args.y_offset + i] = x[args.x_offset + i] * inv * weight[i];
}
