// qmv.glsl - the body of qmv.comp and qmv_expert.comp: the workgroup's row
// of y = W x, per group scale * sum(q * x) + bias * sum(x), for codes from
// byte W_OFF, scales from byte S_OFF and biases from byte B_OFF. Threads of the
// workgroup take groups in turn and meet in a shared-memory sum, which does
// not depend on the subgroup size. Included after the buffers, `args`
// (rows, cols, bits, group_size, param_dtype, x_offset, y_offset) and `partial`.

#include "affine.glsl"

void qmv_row(uint w_off, uint s_off, uint b_off) {
    uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
    uint lid = gl_LocalInvocationID.x;
    if (row >= args.rows) return; // the whole workgroup: no barrier is left waiting
    uint groups = args.cols / args.group_size;
    float acc = 0.0;
    for (uint g = lid; g < groups; g += KT_QMV_THREADS) {
        float sqx = 0.0, sx = 0.0;
        uint base = row * args.cols + g * args.group_size;
        for (uint j = 0u; j < args.group_size; j++) {
            float xv = x[args.x_offset + g * args.group_size + j];
            sqx += float(code_at(base + j, args.bits, w_off)) * xv;
            sx += xv;
        }
        uint p = (row * groups + g) * dtype_bytes(args.param_dtype);
        acc += value_of(KT_VALUE_AT(scales, s_off + p, args.param_dtype), args.param_dtype) * sqx +
               value_of(KT_VALUE_AT(biases, b_off + p, args.param_dtype), args.param_dtype) * sx;
    }
    partial[lid] = acc;
    barrier();
    for (uint stride = KT_QMV_THREADS / 2; stride > 0u; stride >>= 1) {
        if (lid < stride) partial[lid] += partial[lid + stride];
        barrier();
    }
    if (lid == 0u) y[args.y_offset + row] = partial[0];
}
