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

#include "affine.glsl"

void main() {
    uint j = gl_GlobalInvocationID.x;
    if (j >= args.cols) return;
    uint q = code_at(args.row * args.cols + j, args.bits, args.w_offset);
    uint p = (args.row * (args.cols / args.group_size) + j / args.group_size) * dtype_bytes(args.param_dtype);
    precise float prod = value_of(KT_VALUE_AT(scales, args.s_offset + p, args.param_dtype), args.param_dtype) * float(q);
    precise float out_value = prod + value_of(KT_VALUE_AT(biases, args.b_offset + p, args.param_dtype), args.param_dtype);
    y[args.y_offset + j] = out_value;
}
