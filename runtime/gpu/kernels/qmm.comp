// qmm.comp - the prompt's matrix-matrix product Y[t] = W X[t] for up to
// KT_QMM_MAX_TOKENS tokens (gpu_abi.h), W affine-quantized as in qmv: each
// thread's groups are decoded once and used for every token, partial sums
// per token meet in shared memory.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_QMV_THREADS) in;
layout(std430, binding = KT_QMM_BIND_W) readonly buffer Codes { uint w[]; };
layout(std430, binding = KT_QMM_BIND_SCALES) readonly buffer Scales { uint scales[]; };
layout(std430, binding = KT_QMM_BIND_BIASES) readonly buffer Biases { uint biases[]; };
layout(std430, binding = KT_QMM_BIND_X) readonly buffer X { float x[]; };
layout(std430, binding = KT_QMM_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_QMM_ARGS(uint) } args;

shared float partial[KT_QMM_MAX_TOKENS][KT_QMV_THREADS];

#include "affine.glsl"

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint lid = gl_LocalInvocationID.x, T = args.tokens;
    if (row >= args.rows) return;
    uint groups = args.cols / args.group_size;
    float acc[KT_QMM_MAX_TOKENS];
    for (uint t = 0u; t < KT_QMM_MAX_TOKENS; t++) acc[t] = 0.0;
    for (uint g = lid; g < groups; g += KT_QMV_THREADS) {
        float sqx[KT_QMM_MAX_TOKENS], sx[KT_QMM_MAX_TOKENS];
        for (uint t = 0u; t < KT_QMM_MAX_TOKENS; t++) sqx[t] = 0.0, sx[t] = 0.0;
        uint base = row * args.cols + g * args.group_size;
        for (uint j = 0u; j < args.group_size; j++) {
            float q = float(code_at(base + j, args.bits, args.w_offset));
            for (uint t = 0u; t < T; t++) {
                float xv = x[args.x_offset + t * args.cols + g * args.group_size + j];
                sqx[t] += q * xv;
                sx[t] += xv;
            }
        }
        uint p = (row * groups + g) * dtype_bytes(args.param_dtype);
        float s = value_of(KT_VALUE_AT(scales, args.s_offset + p, args.param_dtype), args.param_dtype);
        float b = value_of(KT_VALUE_AT(biases, args.b_offset + p, args.param_dtype), args.param_dtype);
        for (uint t = 0u; t < T; t++) acc[t] += s * sqx[t] + b * sx[t];
    }
    for (uint t = 0u; t < T; t++) partial[t][lid] = acc[t];
    barrier();
    for (uint stride = KT_QMV_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride)
            for (uint t = 0u; t < T; t++) partial[t][lid] += partial[t][lid + stride];
        barrier();
    }
    if (lid == 0u)
        for (uint t = 0u; t < T; t++) y[args.y_offset + t * args.rows + row] = partial[t][0];
}
