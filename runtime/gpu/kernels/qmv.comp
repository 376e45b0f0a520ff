// qmv.comp - y = W x for an MLX affine-quantized W (gpu_abi.h): per group
// scale * sum(q * x) + bias * sum(x), as the CPU kernels compute it. Any
// bits from 2 to 8 (a code may straddle two words for 3, 5 and 6 bits), any
// group size, scales and biases in f32, f16 or bf16. Threads of a workgroup
// take groups in turn and meet in a shared-memory sum, which does not depend
// on the subgroup size.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_QMV_THREADS) in;
layout(std430, binding = KT_QMV_BIND_W) readonly buffer Codes { uint w[]; };
layout(std430, binding = KT_QMV_BIND_SCALES) readonly buffer Scales { uint scales[]; };
layout(std430, binding = KT_QMV_BIND_BIASES) readonly buffer Biases { uint biases[]; };
layout(std430, binding = KT_QMV_BIND_X) readonly buffer X { float x[]; };
layout(std430, binding = KT_QMV_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_QMV_ARGS(uint) } args;

shared float partial[KT_QMV_THREADS];

#include "affine.glsl"

void main() {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint lid = gl_LocalInvocationID.x;
    if (row >= args.rows) return; // the whole workgroup: no barrier is left waiting
    uint groups = args.cols / args.group_size;
    float acc = 0.0;
    for (uint g = lid; g < groups; g += KT_QMV_THREADS) {
        float sqx = 0.0, sx = 0.0;
        uint base = row * args.cols + g * args.group_size;
        for (uint j = 0u; j < args.group_size; j++) {
            float xv = x[g * args.group_size + j];
            sqx += float(code_at(base + j, args.bits, args.w_offset)) * xv;
            sx += xv;
        }
        uint p = args.p_offset + row * groups + g, pw = param_word(p, args.param_dtype);
        acc += param(scales[pw], p, args.param_dtype) * sqx + param(biases[pw], p, args.param_dtype) * sx;
    }
    partial[lid] = acc;
    barrier();
    for (uint stride = KT_QMV_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier();
    }
    if (lid == 0u) y[args.y_offset + row] = partial[0];
}
