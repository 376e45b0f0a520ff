// mamba_conv.comp - the Mamba-2 step's causal depthwise conv and SiLU
// (gpu_abi.h), one thread per channel: its window entries are its own, so
// the window moves on without a barrier.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_MAMBA_THREADS) in;
layout(std430, binding = KT_MAMBA_CONV_BIND_PROJ) readonly buffer Proj { float proj[]; };
layout(std430, binding = KT_MAMBA_CONV_BIND_WINDOW) buffer Window { float window[]; };
layout(std430, binding = KT_MAMBA_CONV_BIND_WEIGHT) readonly buffer Weight { float conv_w[]; };
layout(std430, binding = KT_MAMBA_CONV_BIND_BIAS) readonly buffer Bias { float conv_b[]; };
layout(std430, binding = KT_MAMBA_CONV_BIND_XBC) writeonly buffer Xbc { float xbc[]; };
layout(push_constant) uniform Args { KT_MAMBA_ARGS(uint) } args;

void main() {
    uint inner = args.heads * args.head_dim, dim = inner + 2u * args.groups * args.state, K = args.conv;
    uint ch = gl_GlobalInvocationID.x;
    if (ch >= dim) return;
    float in_value = proj[args.proj_offset + inner + ch];
    float acc = conv_b[ch];
    for (uint k = 0u; k + 1u < K; k++) acc += conv_w[ch * K + k] * window[k * dim + ch];
    acc += conv_w[ch * K + K - 1u] * in_value;
    xbc[ch] = acc / (1.0 + exp(-acc));
    for (uint k = 0u; k + 2u < K; k++) window[k * dim + ch] = window[(k + 1u) * dim + ch];
    if (K >= 2u) window[(K - 2u) * dim + ch] = in_value;
}
