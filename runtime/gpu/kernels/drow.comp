// drow.comp - one row of a dense f32, f16 or bf16 matrix as float32
// (gpu_abi.h): the original checkpoint's embedding lookup. Widening is exact.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_QROW_THREADS) in;
layout(std430, binding = KT_DROW_BIND_W) readonly buffer W { uint w[]; };
layout(std430, binding = KT_DROW_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_DROW_ARGS(uint) } args;

void main() {
    uint j = gl_GlobalInvocationID.x;
    if (j >= args.cols) return;
    uint e = args.row * args.cols + j;
    if (args.w_dtype == KT_GPU_F32) {
        y[j] = uintBitsToFloat(w[e]);
    } else {
        uint word = w[e >> 1], h = (e & 1u) != 0u ? word >> 16 : word & 0xffffu;
        y[j] = args.w_dtype == KT_GPU_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
    }
}
