// ewise.comp - the element-wise steps between the matrices (gpu_abi.h), in
// place: ReLU^2 of the MLP, the residual add. One thread per element; each
// result one float32 operation (or two for ReLU^2) as on the CPU.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_EWISE_THREADS) in;
layout(std430, binding = KT_EWISE_BIND_Y) buffer Y { float y[]; };
layout(std430, binding = KT_EWISE_BIND_A) readonly buffer A { float a[]; };
layout(push_constant) uniform Args { KT_EWISE_ARGS(uint) } args;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= args.n) return;
    uint yi = args.y_offset + i;
    if (args.op == KT_EWISE_RELU2) {
        // MLX's relu2: square(maximum(x, 0)), NaN propagated
        float r = (y[yi] > 0.0 || isnan(y[yi])) ? y[yi] : 0.0;
        precise float sq = r * r;
        y[yi] = sq;
    } else {
        precise float s = y[yi] + a[args.a_offset + i];
        y[yi] = s;
    }
}
