/* fit_lanes.h - the fit (fit.h) of 16 groups at once, one group per vector
 * lane, written once with the compiler's vector types and included by
 * fit_simd.c once per target (FIT_FN names the copy, FIT_TARGET is its target
 * attribute). A vector of 16 floats is one AVX-512 register, two AVX2
 * registers or four NEON registers.
 *
 * Lane l does, for group l, the operations fit_ref.c does, in the same order:
 * element-wise IEEE arithmetic gives the same result in a lane as in a scalar
 * register (no fused multiply-add: the build has -ffp-contract=off), and the
 * scalar steps (solve, error estimate) are fit_ref.c's, done in lanes of
 * doubles with the same operations in the same order. So the bytes are the
 * reference's.
 *
 * The group's values are transposed first: X[j] holds element j of the 16
 * groups. Helpers are macros: a vector argument of a function compiled for
 * another target would change the calling convention.
 */

/* lanes of A where the mask M is set, else lanes of B */
#define FIT_SEL(m, a, b) ((kt_v16f)(((kt_v16i)(a) & (m)) | ((kt_v16i)(b) & ~(m))))

/* solve16 for the lanes of the code sums SQ, SQQ, SQX (and the group's SX,
 * SXX in scope): pairs into S, B, usable lanes in OK, errors in E */
#define FIT_SOLVE(sq, sqq, sqx, s, b, ok, e)                                                          \
    do {                                                                                              \
        float a_[5][16];                                                                              \
        memcpy(a_[0], &(sq), 64), memcpy(a_[1], &(sqq), 64), memcpy(a_[2], &(sqx), 64);               \
        memcpy(a_[3], &sx, 64), memcpy(a_[4], &sxx, 64);                                              \
        FIT_FN(solve16)(t, gs, a_[0], a_[1], a_[2], a_[3], a_[4], s, b, ok, e);                       \
    } while (0)

/* the nearest codes for the pairs (S, B) into OUT[], their squared errors
 * into E: fit_ref.c's nearest() for the lanes */
#define FIT_NEAREST(s, b, out, e)                                                                     \
    do {                                                                                              \
        const kt_v16f inv_ = (zero + 1.0f) / (s);                                                     \
        (e) = zero;                                                                                   \
        for (int j_ = 0; j_ < gs; j_++) {                                                             \
            const kt_v16f q_ = FIT_CODE((X[j_] - (b)) * inv_, nv);                                    \
            const kt_v16f d_ = ((s) * q_ + (b)) - X[j_];                                              \
            (e) += d_ * d_;                                                                           \
            (out)[j_] = q_;                                                                           \
        }                                                                                             \
    } while (0)

/* rne(clamp(v, 0, nmax)), as kt_fit_code() */
#define FIT_CODE(v, nv) (FIT_SEL((v) > (nv), (nv), FIT_SEL((v) < zero, zero, (v))) + two23 - two23)

/* kt_fit_solve() and kt_fit_error() for 16 lanes, in 8-lane halves of
 * doubles: the same operations in the same order; OK[l] is 1 where
 * kt_fit_solve() would return 0, and E[l] is then kt_fit_error(). */
FIT_TARGET static void FIT_FN(solve16)(kt_dtype t, int n, const float *sq, const float *sqq, const float *sqx,
                                       const float *sx, const float *sxx, float *scale, float *bias, int32_t *ok,
                                       double *e) {
    for (int h = 0; h < 16; h += 8) {
        kt_v8f fq, fqq, fqx, fx, fxx;
        memcpy(&fq, sq + h, sizeof fq), memcpy(&fqq, sqq + h, sizeof fq), memcpy(&fqx, sqx + h, sizeof fq);
        memcpy(&fx, sx + h, sizeof fq), memcpy(&fxx, sxx + h, sizeof fq);
        const kt_v8d q = __builtin_convertvector(fq, kt_v8d), qq = __builtin_convertvector(fqq, kt_v8d),
                     qx = __builtin_convertvector(fqx, kt_v8d), x = __builtin_convertvector(fx, kt_v8d),
                     xx = __builtin_convertvector(fxx, kt_v8d), dz = {0}, nd = dz + (double)n;
        const kt_v8d det = nd * qq - q * q;
        const kt_v8d sd = (nd * qx - q * x) / det;
        const kt_v8d bd = (x - sd * q) / nd;
        const kt_v8l good = (det > dz) & ((sd - sd) == dz) & ((bd - bd) == dz);
        kt_v8f sf = __builtin_convertvector(sd, kt_v8f), bf = __builtin_convertvector(bd, kt_v8f);
        if (t == KT_BF16) { /* kt_f32_to_bf16's rounding, widened back */
            const kt_v8u sign = {0}, mask = sign + 0xffff0000u, half = sign + 0x7fffu, one = sign + 1u;
            kt_v8u us, ub;
            memcpy(&us, &sf, sizeof us), memcpy(&ub, &bf, sizeof ub);
            us = (us + half + ((us >> 16) & one)) & mask;
            ub = (ub + half + ((ub >> 16) & one)) & mask;
            memcpy(&sf, &us, sizeof us), memcpy(&bf, &ub, sizeof ub);
        } else if (t == KT_F16) {
            for (int l = 0; l < 8; l++) sf[l] = kt_fit_round_to(t, sf[l]), bf[l] = kt_fit_round_to(t, bf[l]);
        }
        const kt_v8f fz = {0};
        const kt_v8i usable = (sf != fz) & ((sf - sf) == fz) & ((bf - bf) == fz);
        const kt_v8d s2 = __builtin_convertvector(sf, kt_v8d), b2 = __builtin_convertvector(bf, kt_v8d);
        const kt_v8d err = s2 * s2 * qq + 2.0 * s2 * b2 * q + nd * b2 * b2 - 2.0 * s2 * qx - 2.0 * b2 * x + xx;
        const kt_v8i okv = __builtin_convertvector(good, kt_v8i) & usable;
        memcpy(scale + h, &sf, sizeof sf), memcpy(bias + h, &bf, sizeof bf);
        memcpy(e + h, &err, sizeof err);
        for (int l = 0; l < 8; l++) ok[h + l] = okv[l] != 0;
    }
}

FIT_TARGET static void FIT_FN(fit16)(int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale,
                                     float *bias) {
    const float nmax = (float)((1 << bits) - 1);
    const kt_v16f zero = {0}, nv = zero + nmax, two23 = zero + 0x1p23f;
    kt_v16f X[128], DX[128], cand[128], next[128];
    /* the transpose as plain scalar copies (AVX2/AVX-512 gathers measured
     * no faster) */
    float *xt = (float *)DX; /* DX is not needed yet */
    for (int l = 0; l < 16; l++)
        for (int j = 0; j < gs; j++) xt[j * 16 + l] = x[l * gs + j];
    memcpy(X, xt, (size_t)gs * sizeof *X);

    kt_v16f lo = zero, sx = zero, sxx = zero;
    for (int l = 0; l < 16; l++) lo[l] = x[l * gs]; /* X[0], which the compiler cannot see is set */
    kt_v16f hi = lo;
    for (int j = 1; j < gs; j++) {
        lo = FIT_SEL(X[j] < lo, X[j], lo);
        hi = FIT_SEL(X[j] > hi, X[j], hi);
    }
    for (int j = 0; j < gs; j++) {
        sx += X[j];
        sxx += X[j] * X[j];
        DX[j] = X[j] - lo;
    }
    const kt_v16f range = hi - lo;

    /* 1. the trials */
    float best_s[16] = {0}, best_b[16] = {0};
    double best_e[16];
    for (int l = 0; l < 16; l++) best_e[l] = INFINITY;
    for (int i = 0; i < KT_FIT_TRIALS; i++) {
        const kt_v16f iscale = (zero + kt_fit_trial_numerator(bits, i)) / range;
        kt_v16f sq = zero, sqq = zero, sqx = zero;
        for (int j = 0; j < gs; j++) {
            /* DX >= 0 and ISCALE > 0: only the upper clamp can act (a NaN
             * from an infinite range passes either clamp, as in the reference) */
            const kt_v16f v = DX[j] * iscale;
            const kt_v16f q = FIT_SEL(v > nv, nv, v) + two23 - two23;
            sq += q;
            sqq += q * q;
            sqx += q * X[j];
        }
        float s[16], b[16];
        int32_t ok[16];
        double e[16];
        FIT_SOLVE(sq, sqq, sqx, s, b, ok, e);
        for (int l = 0; l < 16; l++)
            if (ok[l] && e[l] < best_e[l]) best_e[l] = e[l], best_s[l] = s[l], best_b[l] = b[l];
    }

    /* 2. nearest codes for the best pairs, then the refits; a lane stops at
     * its first refit that fails or does not help, as the reference's loop */
    kt_v16f sv = zero, bv = zero, err = zero, e = zero;
    int active[16];
    for (int l = 0; l < 16; l++) {
        active[l] = best_s[l] != 0;
        sv[l] = active[l] ? best_s[l] : 1.0f; /* a lane without a pair computes on a dummy */
        bv[l] = active[l] ? best_b[l] : 0.0f;
    }
    FIT_NEAREST(sv, bv, cand, err);
    for (int l = 0; l < 16; l++)
        if (!active[l]) err[l] = INFINITY;
    for (int round = 0; round < KT_FIT_REFITS; round++) {
        kt_v16f sq = zero, sqq = zero, sqx = zero, ns = zero + 1.0f, nb = zero;
        for (int j = 0; j < gs; j++) {
            sq += cand[j];
            sqq += cand[j] * cand[j];
            sqx += cand[j] * X[j];
        }
        int any = 0;
        float s[16], b[16];
        int32_t ok[16];
        double es[16];
        FIT_SOLVE(sq, sqq, sqx, s, b, ok, es);
        for (int l = 0; l < 16; l++) {
            if (active[l] && ok[l]) ns[l] = s[l], nb[l] = b[l];
            else active[l] = 0;
            any |= active[l];
        }
        if (!any) break;
        FIT_NEAREST(ns, nb, next, e);
        kt_v16i take = {0};
        for (int l = 0; l < 16; l++) {
            active[l] = active[l] && e[l] < err[l];
            take[l] = active[l] ? -1 : 0;
            if (active[l]) err[l] = e[l], best_s[l] = ns[l], best_b[l] = nb[l];
        }
        for (int j = 0; j < gs; j++) cand[j] = FIT_SEL(take, next[j], cand[j]);
    }

    /* 3. the baseline, MLX's pair with its nearest codes, and the choice */
    kt_v16f ms, mb;
    memcpy(&ms, scale, sizeof ms);
    memcpy(&mb, bias, sizeof mb);
    const kt_v16i s_zero = ms == zero;
    const kt_v16f ms_div = FIT_SEL(s_zero, zero + 1.0f, ms);
    const kt_v16f imv = (zero + 1.0f) / ms_div;
    kt_v16f err_mlx = zero;
    for (int j = 0; j < gs; j++) {
        kt_v16f q = FIT_CODE((X[j] - mb) * imv, nv);
        q = FIT_SEL(s_zero, zero, q);
        const kt_v16f dd = (ms * q + mb) - X[j];
        err_mlx += dd * dd;
        next[j] = q;
    }
    kt_v16i fit = err < err_mlx;
    kt_v16i *qt = (kt_v16i *)DX; /* the codes, lanes as rows, then transposed back */
    for (int j = 0; j < gs; j++) qt[j] = __builtin_convertvector(FIT_SEL(fit, cand[j], next[j]), kt_v16i);
    const int32_t *qs = (const int32_t *)qt;
    for (int l = 0; l < 16; l++)
        for (int j = 0; j < gs; j++) codes[l * gs + j] = (uint8_t)qs[j * 16 + l];
    for (int l = 0; l < 16; l++)
        if (fit[l]) scale[l] = best_s[l], bias[l] = best_b[l];
}

#undef FIT_SEL
#undef FIT_CODE
#undef FIT_SOLVE
#undef FIT_NEAREST
