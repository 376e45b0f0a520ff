// weigh.comp - a MoE layer's sum of its experts' outputs (gpu_abi.h): y =
// weight[slot] * a for the first expert, y += weight[slot] * a for the
// others, the factor read on the device where the router wrote it. One
// thread per element; the CPU's float operations exactly (`precise`: no
// fused multiply-add).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_EWISE_THREADS) in;
layout(std430, binding = KT_WEIGH_BIND_Y) buffer Y { float y[]; };
layout(std430, binding = KT_WEIGH_BIND_A) readonly buffer A { float a[]; };
layout(std430, binding = KT_WEIGH_BIND_WEIGHT) readonly buffer Weight { float weight[]; };
layout(push_constant) uniform Args { KT_WEIGH_ARGS(uint) } args;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= args.n) return;
    uint yi = args.y_offset + i;
    precise float p = weight[args.slot] * a[args.a_offset + i];
    if (args.first != 0u) {
        y[yi] = p;
    } else {
        precise float s = y[yi] + p;
        y[yi] = s;
    }
}
