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

#include "qmv.glsl"

void main() { qmv_row(args.w_offset, args.s_offset, args.b_offset); }
