// mv_dense.comp - y = W x for a dense W of f32, f16 or bf16 (gpu_abi.h):
// the original checkpoint's matvec. Threads of the row's workgroup take
// elements in turn and meet in a shared-memory sum.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_MV_DENSE_THREADS) in;
layout(std430, binding = KT_MV_DENSE_BIND_W) readonly buffer W { uint w[]; };
layout(std430, binding = KT_MV_DENSE_BIND_X) readonly buffer X { float x[]; };
layout(std430, binding = KT_MV_DENSE_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_MV_DENSE_ARGS(uint) } args;

shared float partial[KT_MV_DENSE_THREADS];

float weight_at(uint e) {
    e += args.w_offset;
    if (args.w_dtype == KT_GPU_F32) return uintBitsToFloat(w[e]);
    uint word = w[e >> 1], h = (e & 1u) != 0u ? word >> 16 : word & 0xffffu;
    return args.w_dtype == KT_GPU_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint lid = gl_LocalInvocationID.x;
    if (row >= args.rows) return;
    float acc = 0.0;
    for (uint j = lid; j < args.cols; j += KT_MV_DENSE_THREADS) acc += weight_at(row * args.cols + j) * x[j];
    partial[lid] = acc;
    barrier();
    for (uint stride = KT_MV_DENSE_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier();
    }
    if (lid == 0u) y[args.y_offset + row] = partial[0];
}
