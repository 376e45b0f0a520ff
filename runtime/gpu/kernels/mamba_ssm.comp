// mamba_ssm.comp - the Mamba-2 state update and readout (gpu_abi.h), one
// thread per (head, head-dim row): its state row is its own.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_MAMBA_THREADS) in;
layout(std430, binding = KT_MAMBA_SSM_BIND_PROJ) readonly buffer Proj { float proj[]; };
layout(std430, binding = KT_MAMBA_SSM_BIND_XBC) readonly buffer Xbc { float xbc[]; };
layout(std430, binding = KT_MAMBA_SSM_BIND_STATE) buffer State { float st[]; };
layout(std430, binding = KT_MAMBA_SSM_BIND_PARAMS) readonly buffer Params { float params[]; };
layout(std430, binding = KT_MAMBA_SSM_BIND_Y) writeonly buffer Y { float y[]; };
layout(push_constant) uniform Args { KT_MAMBA_ARGS(uint) } args;

float softplus(float v) { return v > 20.0 ? v : log(1.0 + exp(v)); }

void main() {
    uint P = args.head_dim, N = args.state, H = args.heads;
    uint inner = H * P, dim = inner + 2u * args.groups * N;
    uint row = gl_GlobalInvocationID.x;
    if (row >= inner) return;
    uint h = row / P, g = h / (H / args.groups);
    float d = softplus(proj[args.proj_offset + inner + dim + h] + params[h]);
    d = clamp(d, uintBitsToFloat(args.dt_min_bits), uintBitsToFloat(args.dt_max_bits));
    float dA = exp(d * -exp(params[H + h])), Dh = params[2u * H + h];
    float xv = xbc[row], dx = d * xv;
    uint b0 = inner + g * N, c0 = inner + args.groups * N + g * N;
    float acc = 0.0;
    for (uint n = 0u; n < N; n++) {
        float s = st[row * N + n] * dA + dx * xbc[b0 + n];
        st[row * N + n] = s;
        acc += s * xbc[c0 + n];
    }
    y[args.y_offset + row] = acc + Dh * xv;
}
