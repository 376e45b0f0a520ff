/* gpu_abi.h - what the GPU kernels and their hosts agree on: binding numbers
 * and the layout of each kernel's arguments. Included by the GLSL compute
 * shaders (runtime/gpu/kernels/ *.comp, where GL_core_profile is defined) and
 * by the C hosts, so the two cannot drift apart; tests/gpu/check_msl.py checks
 * that the Metal translation keeps the same buffer indices.
 *
 * Storage buffers are bound from 1 up; 0 is left to the arguments, which
 * Vulkan passes as push constants and the Metal translation as buffer 0.
 * Every argument is a 32-bit unsigned word: the same layout in std430 push
 * constants, in MSL and in a C struct.
 *
 * Offsets into float vectors (x_offset, y_offset, proj_offset, ...) are in
 * floats: a call on one token of a prompt held as a matrix (forward.c's
 * batch) names its row. Offsets into weights (w_offset, s_offset, b_offset,
 * expert_*bytes) are in
 * BYTES: the kernels read weights where the model file holds them, and a
 * safetensors file written by MLX aligns no tensor (affine.glsl). A weight
 * buffer stays under 256 MiB (the backend splits larger matrices by rows),
 * so bit positions within it fit 32 bits.
 */
#ifndef KT_GPU_ABI_H
#define KT_GPU_ABI_H

#define KT_GPU_ARGS_INDEX 0 /* the Metal buffer index of the arguments */

/* dtypes of scales, biases and vectors as the kernels read them */
#define KT_GPU_F32 0
#define KT_GPU_F16 1
#define KT_GPU_BF16 2

/* ---- qmv: y = W x for an MLX affine-quantized W [rows, cols] ----
 * W: packed codes (element j of row r at bit (r*cols + j) * bits of the
 * tensor, which starts at byte w_offset); scales and biases: rows x
 * cols/group_size values of param_dtype, the scales from byte s_offset and
 * the biases from byte b_offset (each its own buffer, at its own place in an
 * imported page); x, y: float32
 * (y from element y_offset: a row of the KV cache).
 * One workgroup per row (rows beyond 65535 continue in gl_WorkGroupID.y). */
#define KT_QMV_THREADS 64
#define KT_QMV_BIND_W 1
#define KT_QMV_BIND_SCALES 2
#define KT_QMV_BIND_BIASES 3
#define KT_QMV_BIND_X 4
#define KT_QMV_BIND_Y 5
#define KT_QMV_ARGS(U) U rows; U cols; U bits; U group_size; U param_dtype; U w_offset; U s_offset; U b_offset; U y_offset; U x_offset;

/* ---- qmm: Y[t] = W X[t] for T tokens of the prompt, W as in qmv; X: T x
 * cols, Y: T x rows (token-major, as the CPU's batch). One workgroup per
 * row computes the row's T outputs, so each code is read once per row and
 * used T times. */
#define KT_QMM_MAX_TOKENS 8 /* per dispatch; the host loops over blocks */
#define KT_QMM_BIND_W 1
#define KT_QMM_BIND_SCALES 2
#define KT_QMM_BIND_BIASES 3
#define KT_QMM_BIND_X 4
#define KT_QMM_BIND_Y 5
#define KT_QMM_ARGS(U) U rows; U cols; U bits; U group_size; U param_dtype; U w_offset; U s_offset; U b_offset; U tokens; U x_offset; U y_offset;

/* ---- mv_dense: y = W x for a dense W [rows, cols] of w_dtype (the bf16
 * original, the verify reference), from byte w_offset; x, y float32. One
 * workgroup per row, as qmv. */
#define KT_MV_DENSE_THREADS 64
#define KT_MV_DENSE_BIND_W 1
#define KT_MV_DENSE_BIND_X 2
#define KT_MV_DENSE_BIND_Y 3
#define KT_MV_DENSE_ARGS(U) U rows; U cols; U w_dtype; U w_offset; U y_offset; U x_offset;

/* ---- mm_dense: Y[t] = W X[t] for T tokens of the prompt, W dense as in
 * mv_dense, X and Y as in qmm. Each row's sums in mv_dense's order. */
#define KT_MM_DENSE_BIND_W 1
#define KT_MM_DENSE_BIND_X 2
#define KT_MM_DENSE_BIND_Y 3
#define KT_MM_DENSE_ARGS(U) U rows; U cols; U w_dtype; U w_offset; U tokens; U x_offset; U y_offset;

/* ---- drow: row `row` of a dense W of w_dtype from byte w_offset as float32 (the original's
 * embedding lookup). One thread per element. */
#define KT_DROW_BIND_W 1
#define KT_DROW_BIND_Y 2
#define KT_DROW_ARGS(U) U row; U cols; U w_dtype; U w_offset; U y_offset;

/* ---- qrow: row `row` of an affine-quantized W dequantized to float32 (the
 * embedding lookup): out[j] = scale * q + bias, buffers and layout as qmv.
 * One thread per element. */
#define KT_QROW_THREADS 64
#define KT_QROW_BIND_W 1
#define KT_QROW_BIND_SCALES 2
#define KT_QROW_BIND_BIASES 3
#define KT_QROW_BIND_Y 4
#define KT_QROW_ARGS(U) U row; U cols; U bits; U group_size; U param_dtype; U w_offset; U s_offset; U b_offset; U y_offset;

/* ---- the Mamba-2 step (runtime/cpu/mamba2.c), three kernels ----
 * All float32. Sizes: I = heads * head_dim, dim = I + 2 * groups * state.
 * mamba_conv: XBC = silu(conv_b + causal depthwise conv over the window and
 *   the new input PROJ[I .. I + dim)); the window (conv - 1 previous inputs,
 *   oldest first, [conv - 1][dim]) moves on. One thread per channel.
 * mamba_ssm: per head h and row p of its state (group g = h / (heads /
 *   groups)), dt = clamp(softplus(PROJ[I + dim + h] + dt_bias), dt_min,
 *   dt_max), state = exp(dt * -exp(A_log)) * state + dt * x * B_g, y = state
 *   . C_g + D * x. One thread per (h, p).
 * mamba_gate: y *= silu(z), RMS-normalised per group of I / groups channels,
 *   times the norm weight. One workgroup per group. */
#define KT_MAMBA_THREADS 64
#define KT_MAMBA_CONV_BIND_PROJ 1
#define KT_MAMBA_CONV_BIND_WINDOW 2
#define KT_MAMBA_CONV_BIND_WEIGHT 3
#define KT_MAMBA_CONV_BIND_BIAS 4
#define KT_MAMBA_CONV_BIND_XBC 5
#define KT_MAMBA_SSM_BIND_PROJ 1
#define KT_MAMBA_SSM_BIND_XBC 2
#define KT_MAMBA_SSM_BIND_STATE 3
#define KT_MAMBA_SSM_BIND_PARAMS 4 /* dt_bias, A_log, D: 3 x heads */
#define KT_MAMBA_SSM_BIND_Y 5
#define KT_MAMBA_GATE_BIND_PROJ 1
#define KT_MAMBA_GATE_BIND_WEIGHT 2
#define KT_MAMBA_GATE_BIND_Y 3
#define KT_MAMBA_ARGS(U) U heads; U head_dim; U groups; U state; U conv; U dt_min_bits; U dt_max_bits; U eps_bits; U proj_offset; U y_offset;

/* ---- attend: attention of one token's queries over the KV cache at
 * positions 0..pos (runtime/cpu/attention.c): per head h (kv head h /
 * (heads / kv_heads)) softmax(q . k / sqrt(head_dim)) weighting v. Q, O:
 * [heads][head_dim]; K, V: [position][kv_heads][head_dim]; SCORES: scratch
 * of heads * (pos + 1) floats. One workgroup per head. */
#define KT_ATTEND_THREADS 64
#define KT_ATTEND_BIND_Q 1
#define KT_ATTEND_BIND_K 2
#define KT_ATTEND_BIND_V 3
#define KT_ATTEND_BIND_SCORES 4
#define KT_ATTEND_BIND_O 5
#define KT_ATTEND_ARGS(U) U heads; U kv_heads; U head_dim; U pos; U q_offset; U o_offset;

/* ---- ewise: element-wise steps between the matrices, in place on Y:
 * op RELU2: y = max(y, 0)^2 (the MLP); op ADD: y = y + a (the residual). */
#define KT_EWISE_THREADS 64
#define KT_EWISE_RELU2 0
#define KT_EWISE_ADD 1
#define KT_EWISE_BIND_Y 1
#define KT_EWISE_BIND_A 2
#define KT_EWISE_ARGS(U) U n; U op; U y_offset; U a_offset;

/* ---- a MoE layer on the device (runtime/cpu/moe_route.c, forward.c's moe()) ----
 * moe_route: SCORE (the gate's n_experts logits) becomes the sigmoid
 *   scores; CHOSEN receives the top_k experts (uint), WEIGHT their factors;
 *   SCRATCH: n_experts + n_group + top_k floats. One thread.
 * qmv_expert: qmv (same buffers and layout) on expert CHOSEN[slot] of a
 *   layer's experts packed one after another: its codes from byte w_offset +
 *   expert * expert_bytes, its scales and biases from bytes s_offset and
 *   b_offset + expert * expert_param_bytes.
 * mv_dense_expert: mv_dense likewise, from byte w_offset + expert *
 *   expert_bytes.
 * weigh: Y = WEIGHT[slot] * A when first, else Y += WEIGHT[slot] * A. */
#define KT_MOE_ROUTE_THREADS 1
#define KT_MOE_ROUTE_BIND_SCORE 1
#define KT_MOE_ROUTE_BIND_BIAS 2
#define KT_MOE_ROUTE_BIND_CHOSEN 3
#define KT_MOE_ROUTE_BIND_WEIGHT 4
#define KT_MOE_ROUTE_BIND_SCRATCH 5
#define KT_MOE_ROUTE_ARGS(U) U n_experts; U top_k; U n_group; U topk_group; U norm_topk; U routed_scale_bits;
#define KT_QMV_EXPERT_BIND_W 1
#define KT_QMV_EXPERT_BIND_SCALES 2
#define KT_QMV_EXPERT_BIND_BIASES 3
#define KT_QMV_EXPERT_BIND_X 4
#define KT_QMV_EXPERT_BIND_Y 5
#define KT_QMV_EXPERT_BIND_CHOSEN 6
#define KT_QMV_EXPERT_ARGS(U) U rows; U cols; U bits; U group_size; U param_dtype; U w_offset; U s_offset; U b_offset; U y_offset; U slot; U expert_bytes; U expert_param_bytes; U x_offset;
#define KT_MV_DENSE_EXPERT_BIND_W 1
#define KT_MV_DENSE_EXPERT_BIND_X 2
#define KT_MV_DENSE_EXPERT_BIND_Y 3
#define KT_MV_DENSE_EXPERT_BIND_CHOSEN 4
#define KT_MV_DENSE_EXPERT_ARGS(U) U rows; U cols; U w_dtype; U w_offset; U y_offset; U slot; U expert_bytes; U x_offset;
#define KT_WEIGH_BIND_Y 1
#define KT_WEIGH_BIND_A 2
#define KT_WEIGH_BIND_WEIGHT 3
#define KT_WEIGH_ARGS(U) U n; U slot; U first; U y_offset; U a_offset;

/* ---- rmsnorm: y = x / sqrt(mean(x^2) + eps) * weight, one vector ----
 * x, weight, y: float32 [n]; eps as the bits of a float32. */
#define KT_RMSNORM_THREADS 64
#define KT_RMSNORM_BIND_X 1
#define KT_RMSNORM_BIND_WEIGHT 2
#define KT_RMSNORM_BIND_Y 3
#define KT_RMSNORM_ARGS(U) U n; U eps_bits; U x_offset; U y_offset;

#ifndef GL_core_profile
#include <stdint.h>
typedef struct { KT_QMV_ARGS(uint32_t) } kt_gpu_qmv_args;
typedef struct { KT_RMSNORM_ARGS(uint32_t) } kt_gpu_rmsnorm_args;
typedef struct { KT_MV_DENSE_ARGS(uint32_t) } kt_gpu_mv_dense_args;
typedef struct { KT_QMM_ARGS(uint32_t) } kt_gpu_qmm_args;
typedef struct { KT_MM_DENSE_ARGS(uint32_t) } kt_gpu_mm_dense_args;
typedef struct { KT_QROW_ARGS(uint32_t) } kt_gpu_qrow_args;
typedef struct { KT_DROW_ARGS(uint32_t) } kt_gpu_drow_args;
typedef struct { KT_MAMBA_ARGS(uint32_t) } kt_gpu_mamba_args;
typedef struct { KT_ATTEND_ARGS(uint32_t) } kt_gpu_attend_args;
typedef struct { KT_EWISE_ARGS(uint32_t) } kt_gpu_ewise_args;
typedef struct { KT_MOE_ROUTE_ARGS(uint32_t) } kt_gpu_moe_route_args;
typedef struct { KT_QMV_EXPERT_ARGS(uint32_t) } kt_gpu_qmv_expert_args;
typedef struct { KT_MV_DENSE_EXPERT_ARGS(uint32_t) } kt_gpu_mv_dense_expert_args;
typedef struct { KT_WEIGH_ARGS(uint32_t) } kt_gpu_weigh_args;
#endif

#endif
