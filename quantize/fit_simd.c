/* fit_simd.c - the fit of 16 groups at once (fit_lanes.h) for each target,
 * kt_fit_groups() and the choice of kernel at run time. */
#include "fit.h"

#include <math.h>
#include <string.h>

typedef float kt_v16f __attribute__((vector_size(64)));
typedef int32_t kt_v16i __attribute__((vector_size(64)));
typedef float kt_v8f __attribute__((vector_size(32)));
typedef int32_t kt_v8i __attribute__((vector_size(32)));
typedef uint32_t kt_v8u __attribute__((vector_size(32)));
typedef double kt_v8d __attribute__((vector_size(64)));
typedef int64_t kt_v8l __attribute__((vector_size(64)));

typedef void (*fit16_fn)(int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale, float *bias);

#if defined(__x86_64__)
#define FIT_TARGET __attribute__((target("avx2")))
#define FIT_FN(name) name##_avx2
#include "fit_lanes.h"
#undef FIT_TARGET
#undef FIT_FN
#define FIT_TARGET __attribute__((target("avx512f")))
#define FIT_FN(name) name##_avx512
#include "fit_lanes.h"
#undef FIT_TARGET
#undef FIT_FN
#elif defined(__aarch64__)
#define FIT_TARGET
#define FIT_FN(name) name##_neon
#include "fit_lanes.h"
#undef FIT_TARGET
#undef FIT_FN
#endif

static fit16_fn current; /* NULL with the scalar kernel */
static const char *current_name;

int kt_fit_use_kernel(kt_quant_kernel kernel) {
    if (kernel == KT_QK_AUTO) {
        static const kt_quant_kernel order[] = {KT_QK_AVX512, KT_QK_AVX2, KT_QK_NEON, KT_QK_SCALAR};
        for (size_t i = 0; i < sizeof order / sizeof *order; i++)
            if (kt_fit_use_kernel(order[i]) == 0) return 0;
        return -1;
    }
    if (kernel != KT_QK_SCALAR && !kt_quant_kernel_available(kernel)) return -1;
    switch (kernel) {
    case KT_QK_SCALAR: current = NULL, current_name = "scalar"; return 0;
#if defined(__x86_64__)
    case KT_QK_AVX2: current = fit16_avx2, current_name = "avx2"; return 0;
    case KT_QK_AVX512: current = fit16_avx512, current_name = "avx512"; return 0;
#elif defined(__aarch64__)
    case KT_QK_NEON: current = fit16_neon, current_name = "neon"; return 0;
#endif
    default: return -1;
    }
}

const char *kt_fit_kernel_name(void) {
    if (!current_name) kt_fit_use_kernel(KT_QK_AUTO);
    return current_name;
}

void kt_fit_groups(int bits, int gs, kt_dtype t, size_t n, const float *x, uint8_t *codes, float *scale,
                   float *bias) {
    if (!current_name) kt_fit_use_kernel(KT_QK_AUTO);
    size_t g = 0;
    if (current) {
        for (; g + 16 <= n; g += 16)
            current(bits, gs, t, x + g * gs, codes + g * gs, scale + g, bias + g);
        if (g < n) { /* the last few: padded with copies of the last group */
            float px[16 * 128], ps[16], pb[16];
            uint8_t pc[16 * 128];
            for (size_t l = 0; l < 16; l++) {
                const size_t src = g + l < n ? g + l : n - 1;
                memcpy(px + l * gs, x + src * gs, (size_t)gs * sizeof *px);
                memcpy(pc + l * gs, codes + src * gs, (size_t)gs);
                ps[l] = scale[src], pb[l] = bias[src];
            }
            current(bits, gs, t, px, pc, ps, pb);
            memcpy(codes + g * gs, pc, (n - g) * (size_t)gs);
            memcpy(scale + g, ps, (n - g) * sizeof *ps);
            memcpy(bias + g, pb, (n - g) * sizeof *pb);
        }
        return;
    }
    for (; g < n; g++) kt_fit_group_ref(bits, gs, t, x + g * gs, codes + g * gs, scale + g, bias + g);
}
