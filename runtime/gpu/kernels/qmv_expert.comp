// qmv_expert.comp - qmv for one expert of a MoE layer, the one the router
// chose on the device (gpu_abi.h): expert chosen[slot] of the layer's
// experts, packed one after another (expert_words code words and
// expert_params scales and biases each). The choice never goes back to the
// host, so a MoE token stays one submission.
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_QMV_THREADS) in;
layout(std430, binding = KT_QMV_EXPERT_BIND_W) readonly buffer Codes { uint w[]; };
layout(std430, binding = KT_QMV_EXPERT_BIND_SCALES) readonly buffer Scales { uint scales[]; };
layout(std430, binding = KT_QMV_EXPERT_BIND_BIASES) readonly buffer Biases { uint biases[]; };
layout(std430, binding = KT_QMV_EXPERT_BIND_X) readonly buffer X { float x[]; };
layout(std430, binding = KT_QMV_EXPERT_BIND_Y) writeonly buffer Y { float y[]; };
layout(std430, binding = KT_QMV_EXPERT_BIND_CHOSEN) readonly buffer Chosen { uint chosen[]; };
layout(push_constant) uniform Args { KT_QMV_EXPERT_ARGS(uint) } args;

shared float partial[KT_QMV_THREADS];

#include "qmv.glsl"

void main() {
    uint expert = chosen[args.slot];
    qmv_row(args.w_offset + expert * args.expert_bytes, args.s_offset + expert * args.expert_param_bytes,
            args.b_offset + expert * args.expert_param_bytes);
}
