// mm_dense.comp - the prompt's matrix-matrix product Y[t] = W X[t] for up to
// KT_QMM_MAX_TOKENS tokens (gpu_abi.h), W dense f32, f16 or bf16 (the
// original checkpoint): each weight is read once and used for every token.
// Every token's sum is taken in mv_dense's order (threads take elements in
// turn, then the same shared-memory tree), so a row equals mv_dense's.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_MV_DENSE_THREADS) in;
layout(std430, binding = KT_MM_DENSE_BIND_W) readonly buffer W { uint w[]; };
layout(std430, binding = KT_MM_DENSE_BIND_X) readonly buffer X { float x[]; };
layout(std430, binding = KT_MM_DENSE_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_MM_DENSE_ARGS(uint) } args;

shared float partial[KT_QMM_MAX_TOKENS][KT_MV_DENSE_THREADS];

#include "affine.glsl"

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint lid = gl_LocalInvocationID.x, T = args.tokens, es = dtype_bytes(args.w_dtype);
    if (row >= args.rows) return;
    float acc[KT_QMM_MAX_TOKENS];
    for (uint t = 0u; t < KT_QMM_MAX_TOKENS; t++) acc[t] = 0.0;
    for (uint j = lid; j < args.cols; j += KT_MV_DENSE_THREADS) {
        float wv = value_of(KT_VALUE_AT(w, args.w_offset + (row * args.cols + j) * es, args.w_dtype), args.w_dtype);
        for (uint t = 0u; t < T; t++) acc[t] += wv * x[args.x_offset + t * args.cols + j];
    }
    for (uint t = 0u; t < T; t++) partial[t][lid] = acc[t];
    barrier();
    for (uint stride = KT_MV_DENSE_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride)
            for (uint t = 0u; t < T; t++) partial[t][lid] += partial[t][lid + stride];
        barrier();
    }
    if (lid == 0u)
        for (uint t = 0u; t < T; t++) y[args.y_offset + t * args.rows + row] = partial[t][0];
}
