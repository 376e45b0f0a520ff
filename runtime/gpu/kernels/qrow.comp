// qrow.comp - one row of an MLX affine-quantized matrix as float32
// (gpu_abi.h): the embedding lookup. out[j] = scale * q + bias, the
// product and the sum each rounded to float32 (precise: no fused
// multiply-add), as the CPU reference computes it.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_QROW_THREADS) in;
layout(std430, binding = KT_QROW_BIND_W) readonly buffer Codes { uint w[]; };
layout(std430, binding = KT_QROW_BIND_SCALES) readonly buffer Scales { uint scales[]; };
layout(std430, binding = KT_QROW_BIND_BIASES) readonly buffer Biases { uint biases[]; };
layout(std430, binding = KT_QROW_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_QROW_ARGS(uint) } args;

float param(uint word, uint i) {
    if (args.param_dtype == KT_GPU_F32) return uintBitsToFloat(word);
    uint h = (i & 1u) != 0u ? word >> 16 : word & 0xffffu;
    return args.param_dtype == KT_GPU_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

void main() {
    uint j = gl_GlobalInvocationID.x;
    if (j >= args.cols) return;
    uint e = args.row * args.cols + j;
    uint bit = e * args.bits, word = args.w_offset + (bit >> 5), shift = bit & 31u;
    uint v = w[word] >> shift;
    if (shift + args.bits > 32u) v |= w[word + 1u] << (32u - shift);
    uint q = v & ((1u << args.bits) - 1u);
    uint p = args.p_offset + args.row * (args.cols / args.group_size) + j / args.group_size;
    uint pw = args.param_dtype == KT_GPU_F32 ? p : p >> 1;
    precise float prod = param(scales[pw], p) * float(q);
    precise float out_value = prod + param(biases[pw], p);
    y[j] = out_value;
}
