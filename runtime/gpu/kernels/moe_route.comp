// moe_route.comp - the choice of experts of a MoE layer (gpu_abi.h), step by
// step as runtime/cpu/moe_route.c: sigmoid scores of the gate's logits; the
// ranking by score + correction bias, within the topk_group best groups when
// n_group > 1 (a group scored by its two best); the top_k taken best first,
// the lowest index among equals; their factors the plain scores, normalised
// when asked, times routed_scaling_factor. A few hundred values: one thread
// does it all, in the CPU's order, so that the same logits give the same
// choice.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_MOE_ROUTE_THREADS) in;
layout(std430, binding = KT_MOE_ROUTE_BIND_SCORE) buffer Score { float score[]; };
layout(std430, binding = KT_MOE_ROUTE_BIND_BIAS) readonly buffer Bias { float bias[]; };
layout(std430, binding = KT_MOE_ROUTE_BIND_CHOSEN) writeonly buffer Chosen { uint chosen[]; };
layout(std430, binding = KT_MOE_ROUTE_BIND_WEIGHT) buffer Weight { float weight[]; };
layout(std430, binding = KT_MOE_ROUTE_BIND_SCRATCH) buffer Scratch { float scratch[]; };
layout(push_constant) uniform Args { KT_MOE_ROUTE_ARGS(uint) } args;

void main() {
    const float INF = uintBitsToFloat(0x7f800000u);
    if (gl_GlobalInvocationID.x != 0u) return;
    uint E = args.n_experts, K = args.top_k, G = args.n_group, sel = 0u, gscore = E;
    for (uint e = 0u; e < E; e++) {
        precise float s = 1.0 / (1.0 + exp(-score[e]));
        score[e] = s;
        precise float b = s + bias[e];
        scratch[sel + e] = b;
    }
    if (G > 1u) {
        uint per = E / G;
        for (uint g = 0u; g < G; g++) {
            float a = -INF, b = -INF;
            for (uint e = g * per; e < (g + 1u) * per; e++) {
                float v = scratch[sel + e];
                if (v > a) { b = a; a = v; } else if (v > b) b = v;
            }
            precise float sum = a + b;
            scratch[gscore + g] = sum;
        }
        for (uint drop = 0u; drop < G - args.topk_group; drop++) {
            int worst = -1;
            for (uint g = 0u; g < G; g++) {
                float v = scratch[gscore + g];
                if (v != INF && (worst < 0 || v < scratch[gscore + uint(worst)])) worst = int(g);
            }
            for (uint e = uint(worst) * per; e < (uint(worst) + 1u) * per; e++) scratch[sel + e] = 0.0;
            scratch[gscore + uint(worst)] = INF;
        }
    }
    // the choice is kept in the scratch after the group scores, so that the
    // loop can look back at it (CHOSEN is write-only)
    uint picked = E + G;
    precise float total = 0.0;
    for (uint k = 0u; k < K; k++) {
        int best = -1;
        for (uint e = 0u; e < E; e++) {
            bool taken = false;
            for (uint j = 0u; j < k; j++) taken = taken || floatBitsToUint(scratch[picked + j]) == e;
            if (!taken && (best < 0 || scratch[sel + e] > scratch[sel + uint(best)])) best = int(e);
        }
        scratch[picked + k] = uintBitsToFloat(uint(best));
        chosen[k] = uint(best);
        weight[k] = score[uint(best)];
        total = total + weight[k];
    }
    float scale = uintBitsToFloat(args.routed_scale_bits);
    for (uint k = 0u; k < K; k++) {
        precise float f = (K > 1u && args.norm_topk != 0u ? weight[k] / (total + 1e-20) : weight[k]) * scale;
        weight[k] = f;
    }
}
