// mv_dense.glsl - the body of mv_dense.comp and mv_dense_expert.comp: the
// workgroup's row of y = W x for a dense W of f32, f16 or bf16 from element
// W_OFF. Threads take elements in turn and meet in a shared-memory sum.
// Included after the buffers, `args` (rows, cols, w_dtype, y_offset) and
// `partial`.

float weight_at(uint e, uint w_off) {
    e += w_off;
    if (args.w_dtype == KT_GPU_F32) return uintBitsToFloat(w[e]);
    uint word = w[e >> 1], h = (e & 1u) != 0u ? word >> 16 : word & 0xffffu;
    return args.w_dtype == KT_GPU_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

void mv_dense_row(uint w_off) {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint lid = gl_LocalInvocationID.x;
    if (row >= args.rows) return;
    float acc = 0.0;
    for (uint j = lid; j < args.cols; j += KT_MV_DENSE_THREADS) acc += weight_at(row * args.cols + j, w_off) * x[j];
    partial[lid] = acc;
    barrier();
    for (uint stride = KT_MV_DENSE_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier();
    }
    if (lid == 0u) y[args.y_offset + row] = partial[0];
}
