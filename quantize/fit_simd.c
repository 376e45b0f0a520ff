/* fit_simd.c - the fit's vector passes (fit_lanes.h) for each target, and
 * the choice among them at run time. */
#include "fit.h"
#include "fit_passes.h"

#include <string.h>

typedef float kt_v16f __attribute__((vector_size(64)));
typedef int32_t kt_v16i __attribute__((vector_size(64)));

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

static const kt_fit_passes *current;
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
    case KT_QK_SCALAR: current = &kt_fit_passes_ref, current_name = "scalar"; return 0;
#if defined(__x86_64__)
    case KT_QK_AVX2: current = &passes_avx2, current_name = "avx2"; return 0;
    case KT_QK_AVX512: current = &passes_avx512, current_name = "avx512"; return 0;
#elif defined(__aarch64__)
    case KT_QK_NEON: current = &passes_neon, current_name = "neon"; return 0;
#endif
    default: return -1;
    }
}

const char *kt_fit_kernel_name(void) {
    if (!current) kt_fit_use_kernel(KT_QK_AUTO);
    return current_name;
}

int kt_fit_group(int bits, int gs, kt_dtype t, const float *x, uint8_t *codes, float *scale, float *bias) {
    if (!current) kt_fit_use_kernel(KT_QK_AUTO);
    return kt_fit_search(current, bits, gs, t, x, codes, scale, bias);
}
