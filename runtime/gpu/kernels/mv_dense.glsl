// mv_dense.glsl - the body of mv_dense.comp and mv_dense_expert.comp: the
// workgroup's row of y = W x for a dense W of f32, f16 or bf16 from byte
// W_OFF (affine.glsl's reading at any byte). Threads take elements in turn and meet in a shared-memory sum.
// Included after the buffers, `args` (rows, cols, w_dtype, x_offset, y_offset) and
// `partial`.

#include "affine.glsl"

float weight_at(uint e, uint w_off) { return value_of(KT_VALUE_AT(w, w_off + e * dtype_bytes(args.w_dtype), args.w_dtype), args.w_dtype); }

void mv_dense_row(uint w_off) {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint lid = gl_LocalInvocationID.x;
    if (row >= args.rows) return;
    float acc = 0.0;
    for (uint j = lid; j < args.cols; j += KT_MV_DENSE_THREADS) acc += weight_at(row * args.cols + j, w_off) * x[args.x_offset + j];
    partial[lid] = acc;
    barrier();
    for (uint stride = KT_MV_DENSE_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier();
    }
    if (lid == 0u) y[args.y_offset + row] = partial[0];
}
