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

#include "mv_dense.glsl"

void main() { mv_dense_row(args.w_offset); }
