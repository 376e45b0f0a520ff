// mv_dense_expert.comp - mv_dense for the expert of a MoE layer the router
// chose on the device (gpu_abi.h): expert chosen[slot] of the layer's dense
// experts, packed one after another (expert_elems values each).
#version 450
#extension GL_GOOGLE_include_directive : require
#include "../gpu_abi.h"

layout(local_size_x = KT_MV_DENSE_THREADS) in;
layout(std430, binding = KT_MV_DENSE_EXPERT_BIND_W) readonly buffer W { uint w[]; };
layout(std430, binding = KT_MV_DENSE_EXPERT_BIND_X) readonly buffer X { float x[]; };
layout(std430, binding = KT_MV_DENSE_EXPERT_BIND_Y) writeonly buffer Y { float y[]; };
layout(std430, binding = KT_MV_DENSE_EXPERT_BIND_CHOSEN) readonly buffer Chosen { uint chosen[]; };
layout(push_constant) uniform Args { KT_MV_DENSE_EXPERT_ARGS(uint) } args;

shared float partial[KT_MV_DENSE_THREADS];

#include "mv_dense.glsl"

void main() { mv_dense_row(args.w_offset + chosen[args.slot] * args.expert_bytes); }
