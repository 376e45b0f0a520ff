// drow.comp - one row of a dense f32, f16 or bf16 matrix as float32
// (gpu_abi.h): the original checkpoint's embedding lookup. Widening is exact.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_QROW_THREADS) in;
layout(std430, binding = KT_DROW_BIND_W) readonly buffer W { uint w[]; };
layout(std430, binding = KT_DROW_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_DROW_ARGS(uint) } args;

#include "affine.glsl"

void main() {
    uint j = gl_GlobalInvocationID.x;
    if (j >= args.cols) return;
    y[args.y_offset + j] = value_of(KT_VALUE_AT(w, args.w_offset + (args.row * args.cols + j) * dtype_bytes(args.w_dtype), args.w_dtype), args.w_dtype);
}
