/* fit_lanes.h - the passes of the fit in 16 vector lanes, written once with
 * the compiler's vector types and included by fit_simd.c once per target
 * (FIT_FN names the copy, FIT_TARGET is its target attribute). A vector of 16
 * floats is one AVX-512 register, two AVX2 registers or four NEON registers;
 * lane l holds elements j = l (mod 16) in order of j, exactly as the scalar
 * passes in fit_ref.c sum them. Element-wise IEEE operations give the same
 * results in a lane as in a scalar register (no fused multiply-add: the build
 * has -ffp-contract=off), so the passes give the same bytes.
 *
 * The helpers are macros: a vector argument of a function compiled without
 * the wide registers would change the calling convention.
 */

/* v = rne(clamp(v, 0, nmax)) for a vector of integral-or-not floats */
#define FIT_CODES(v, nv)                                                              \
    do {                                                                              \
        kt_v16i m_ = (v) < zero;                                                      \
        (v) = (kt_v16f)((kt_v16i)(v) & ~m_);                                          \
        m_ = (v) > (nv);                                                              \
        (v) = (kt_v16f)(((kt_v16i)(v) & ~m_) | ((kt_v16i)(nv) & m_));                 \
        (v) = ((v) + two23) - two23;                                                  \
    } while (0)

FIT_TARGET static void FIT_FN(prep)(int gs, const float *x, float lo, float *dx, float sums[2]) {
    const kt_v16f zero = {0}, lov = zero + lo;
    kt_v16f sx = zero, sxx = zero;
    for (int j = 0; j < gs; j += 16) {
        kt_v16f v;
        memcpy(&v, x + j, sizeof v);
        const kt_v16f d = v - lov;
        memcpy(dx + j, &d, sizeof d);
        sx += v;
        sxx += v * v;
    }
    float a[KT_FIT_LANES];
    memcpy(a, &sx, sizeof a), sums[0] = kt_fit_lanes_sum(a);
    memcpy(a, &sxx, sizeof a), sums[1] = kt_fit_lanes_sum(a);
}

FIT_TARGET static void FIT_FN(trial)(int gs, float nmax, const float *x, const float *dx, float iscale,
                                     float sums[3]) {
    const kt_v16f zero = {0}, nv = zero + nmax, iv = zero + iscale, two23 = zero + 0x1p23f;
    kt_v16f sq = zero, sqq = zero, sqx = zero;
    for (int j = 0; j < gs; j += 16) {
        kt_v16f d, v;
        memcpy(&d, dx + j, sizeof d);
        memcpy(&v, x + j, sizeof v);
        kt_v16f q = d * iv;
        FIT_CODES(q, nv);
        sq += q;
        sqq += q * q;
        sqx += q * v;
    }
    float a[KT_FIT_LANES];
    memcpy(a, &sq, sizeof a), sums[0] = kt_fit_lanes_sum(a);
    memcpy(a, &sqq, sizeof a), sums[1] = kt_fit_lanes_sum(a);
    memcpy(a, &sqx, sizeof a), sums[2] = kt_fit_lanes_sum(a);
}

FIT_TARGET static float FIT_FN(nearest)(int gs, float nmax, const float *x, float s, float b, uint8_t *codes) {
    const kt_v16f zero = {0}, nv = zero + nmax, sv = zero + s, bv = zero + b, two23 = zero + 0x1p23f;
    kt_v16f e = zero;
    for (int j = 0; j < gs; j += 16) {
        kt_v16f v;
        memcpy(&v, x + j, sizeof v);
        kt_v16f q = (v - bv) / sv;
        FIT_CODES(q, nv);
        const kt_v16f d = (sv * q + bv) - v;
        e += d * d;
        const kt_v16i qi = __builtin_convertvector(q, kt_v16i);
        for (int l = 0; l < 16; l++) codes[j + l] = (uint8_t)qi[l];
    }
    float a[KT_FIT_LANES];
    memcpy(a, &e, sizeof a);
    return kt_fit_lanes_sum(a);
}

FIT_TARGET static void FIT_FN(code_sums)(int gs, const float *x, const uint8_t *codes, float sums[3]) {
    const kt_v16f zero = {0};
    kt_v16f sq = zero, sqq = zero, sqx = zero;
    for (int j = 0; j < gs; j += 16) {
        kt_v16f v, q;
        memcpy(&v, x + j, sizeof v);
        for (int l = 0; l < 16; l++) q[l] = (float)codes[j + l];
        sq += q;
        sqq += q * q;
        sqx += q * v;
    }
    float a[KT_FIT_LANES];
    memcpy(a, &sq, sizeof a), sums[0] = kt_fit_lanes_sum(a);
    memcpy(a, &sqq, sizeof a), sums[1] = kt_fit_lanes_sum(a);
    memcpy(a, &sqx, sizeof a), sums[2] = kt_fit_lanes_sum(a);
}

static const kt_fit_passes FIT_FN(passes) = {FIT_FN(prep), FIT_FN(trial), FIT_FN(nearest), FIT_FN(code_sums)};

#undef FIT_CODES
