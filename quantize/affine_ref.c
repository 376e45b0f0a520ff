/* affine_ref.c - the scalar reference of MLX affine quantization.
 *
 * Written to be read beside the MLX kernels: one group at a time, the plain
 * C library rounding functions (rintf is round-half-even in the default
 * rounding mode, roundf is round-half-away-from-zero), a bit-stream packer
 * that writes one code after the other. The vector kernels in affine_simd.c
 * are tested against this file, and this file against mx.quantize.
 */
#include "affine.h"
#include "error.h"

#include <math.h>
#include <string.h>

int kt_quant_params_check(const kt_quant_params *p) {
    if (p->bits != 2 && p->bits != 3 && p->bits != 4 && p->bits != 5 && p->bits != 6 && p->bits != 8)
        return kt_fail("unsupported bits %d (use 2, 3, 4, 5, 6 or 8)", p->bits);
    if (p->group_size != 32 && p->group_size != 64 && p->group_size != 128)
        return kt_fail("unsupported group size %d (use 32, 64 or 128)", p->group_size);
    if (p->mode != KT_QUANT_METAL && p->mode != KT_QUANT_CPU)
        return kt_fail("unknown quantization mode %d", (int)p->mode);
    return 0;
}

const char *kt_quant_mode_name(kt_quant_mode m) { return m == KT_QUANT_CPU ? "cpu" : "metal"; }

int kt_quant_mode_parse(const char *s, kt_quant_mode *m) {
    if (strcmp(s, "metal") == 0) *m = KT_QUANT_METAL;
    else if (strcmp(s, "cpu") == 0) *m = KT_QUANT_CPU;
    else return -1;
    return 0;
}

/* Both kernels: the step between codes is the range over the number of bins
 * (at least 1e-7). Its sign is chosen so that the end of the range with the
 * larger magnitude ("edge") is code 0; then the scale is adjusted so that the
 * edge divided by it is a whole number q0, which puts 0.0 exactly on the
 * grid. When the edge is closer to 0 than half a step, q0 is 0 and the grid
 * simply starts at 0. q0 is rounded like the codes: Metal with round(), the
 * CPU backend with rint(); they differ when edge/step ends in exactly .5. */
/* rint() and round() without a libm call (this runs once per group in every
 * kernel). Exact for every float: from 2^23 on a float is already whole;
 * below, adding and subtracting 2^23 rounds to a whole number in the
 * default round-to-nearest-even mode (the build forbids fast-math, which
 * would fold the pair away). The sign of a zero result may differ from
 * rintf(); callers here only compare with zero or divide by a non-zero q0. */
static inline float round_half_even(float x) {
    if (!(fabsf(x) < 0x1p23f)) return x;
    return x >= 0.0f ? (x + 0x1p23f) - 0x1p23f : (x - 0x1p23f) + 0x1p23f;
}

static inline float round_half_away(float x) {
    if (!(fabsf(x) < 0x1p23f)) return x;
    float t = (float)(int32_t)x; /* truncation, exact below 2^23 */
    float frac = x - t;          /* exact */
    if (frac >= 0.5f) return t + 1.0f;
    if (frac <= -0.5f) return t - 1.0f;
    return t;
}

void kt_quant_group_params(const kt_quant_params *p, float w_min, float w_max, float *scale, float *bias) {
    const float n_bins = (float)((1 << p->bits) - 1);
    const float eps = 1e-7f;
    float s = (w_max - w_min) / n_bins;
    s = s > eps ? s : eps;
    int side = fabsf(w_min) > fabsf(w_max);
    s = side ? s : -s;
    float edge = side ? w_min : w_max;
    float q0 = p->mode == KT_QUANT_CPU ? round_half_even(edge / s) : round_half_away(edge / s);
    *scale = s;
    *bias = 0.0f;
    if (q0 != 0.0f) {
        *scale = edge / q0;
        *bias = edge;
    }
}

/* Append BITS-wide codes to a little-endian bit stream. */
void kt_pack_codes_ref(int bits, const uint8_t *codes, size_t n, uint8_t *out) {
    uint64_t acc = 0;
    int filled = 0;
    for (size_t j = 0; j < n; j++) {
        acc |= (uint64_t)codes[j] << filled;
        filled += bits;
        while (filled >= 8) {
            *out++ = (uint8_t)(acc & 0xff);
            acc >>= 8;
            filled -= 8;
        }
    }
}

void kt_unpack_codes_ref(int bits, const uint8_t *packed, size_t k, uint8_t *codes) {
    uint64_t acc = 0;
    int filled = 0;
    const uint8_t mask = (uint8_t)((1u << bits) - 1);
    for (size_t j = 0; j < k; j++) {
        while (filled < bits) {
            acc |= (uint64_t)*packed++ << filled;
            filled += 8;
        }
        codes[j] = (uint8_t)(acc & mask);
        acc >>= bits;
        filled -= bits;
    }
}

int kt_quantize_row_ref(const kt_quant_params *p, const float *w, size_t k,
                        uint8_t *packed, float *scales, float *biases) {
    const size_t gs = (size_t)p->group_size;
    const float n_bins = (float)((1 << p->bits) - 1);
    uint8_t codes[128];
    for (size_t g = 0; g * gs < k; g++) {
        const float *x = w + g * gs;
        /* The Metal kernel starts the minimum at the dtype's largest finite
         * value and the maximum at 0; the CPU backend at +inf and -inf. For
         * finite input the two starting minima give the same result, so only
         * the maximum's start differs: Metal never sees a maximum below 0. */
        float w_min = INFINITY;
        float w_max = p->mode == KT_QUANT_METAL ? 0.0f : -INFINITY;
        for (size_t j = 0; j < gs; j++) {
            if (!isfinite(x[j])) return -1;
            if (x[j] < w_min) w_min = x[j];
            if (x[j] > w_max) w_max = x[j];
        }
        float scale, bias;
        kt_quant_group_params(p, w_min, w_max, &scale, &bias);
        for (size_t j = 0; j < gs; j++) {
            float q = (x[j] - bias) / scale;
            q = p->mode == KT_QUANT_CPU ? rintf(q) : roundf(q);
            /* The CPU backend clamps to [0, n_bins]; Metal clamps above and
             * converts to uint8, which for finite input never sees a value
             * below -0.5 (see docs/QUANTIZATION.md), so one clamp serves both. */
            q = q < 0.0f ? 0.0f : (q > n_bins ? n_bins : q);
            codes[j] = (uint8_t)q;
        }
        kt_pack_codes_ref(p->bits, codes, gs, packed + g * gs * (size_t)p->bits / 8);
        scales[g] = scale;
        biases[g] = bias;
    }
    return 0;
}

/* Round a float32 result to the storage dtype and back, as MLX does after
 * every arithmetic operation on bf16 and f16 arrays. */
static float round_to(kt_dtype t, float x) {
    if (t == KT_BF16) return kt_bf16_to_f32(kt_f32_to_bf16(x));
    if (t == KT_F16) return kt_f16_to_f32(kt_f32_to_f16(x));
    return x;
}

int kt_dequantize_row_ref(int bits, int group_size, kt_dtype t, const uint8_t *packed,
                          const void *scales, const void *biases, size_t k, void *out) {
    if (t != KT_BF16 && t != KT_F16 && t != KT_F32)
        return kt_fail("cannot dequantize to %s (bf16, f16 or f32 scales expected)", kt_dtype_name(t));
    uint8_t codes[128];
    const size_t gs = (size_t)group_size;
    for (size_t g = 0; g * gs < k; g++) {
        kt_unpack_codes_ref(bits, packed + g * gs * (size_t)bits / 8, gs, codes);
        const size_t es = kt_dtype_bits(t) / 8;
        float scale, bias;
        kt_row_to_f32(t, (const uint8_t *)scales + g * es, &scale, 1);
        kt_row_to_f32(t, (const uint8_t *)biases + g * es, &bias, 1);
        for (size_t j = 0; j < gs; j++) {
            float v = round_to(t, (float)codes[j] * scale) + bias;
            kt_row_from_f32(t, &v, (uint8_t *)out + (g * gs + j) * es, 1);
        }
    }
    return 0;
}
