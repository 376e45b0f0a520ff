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

// element I of a parameter array held as words of DTYPE
float param(uint word, uint i) {
    if (args.param_dtype == KT_GPU_F32) return uintBitsToFloat(word);
    uint h = (i & 1u) != 0u ? word >> 16 : word & 0xffffu;
    return args.param_dtype == KT_GPU_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

float scale_at(uint i) {
    uint e = args.p_offset + i;
    return param(scales[args.param_dtype == KT_GPU_F32 ? e : e >> 1], e);
}

float bias_at(uint i) {
    uint e = args.p_offset + i;
    return param(biases[args.param_dtype == KT_GPU_F32 ? e : e >> 1], e);
}

// code of flat element E of the matrix
uint code_at(uint e) {
    uint bit = e * args.bits, word = args.w_offset + (bit >> 5), shift = bit & 31u;
    uint v = w[word] >> shift;
    if (shift + args.bits > 32u) v |= w[word + 1u] << (32u - shift);
    return v & ((1u << args.bits) - 1u);
}

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
            sqx += float(code_at(base + j)) * xv;
            sx += xv;
        }
        acc += scale_at(row * groups + g) * sqx + bias_at(row * groups + g) * sx;
    }
    partial[lid] = acc;
    barrier();
    for (uint stride = KT_QMV_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier();
    }
    if (lid == 0u) y[args.y_offset + row] = partial[0];
}
