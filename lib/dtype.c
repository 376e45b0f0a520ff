/* dtype.c - the dtype table and the scalar reference conversions. */
#include "dtype.h"

static const struct {
    const char *name;
    unsigned bits;
    int is_float;
} dtype_table[KT_DTYPE_COUNT] = {
    [KT_BOOL] = {"BOOL", 8, 0},        [KT_U8] = {"U8", 8, 0},
    [KT_I8] = {"I8", 8, 0},            [KT_U16] = {"U16", 16, 0},
    [KT_I16] = {"I16", 16, 0},         [KT_F16] = {"F16", 16, 1},
    [KT_BF16] = {"BF16", 16, 1},       [KT_U32] = {"U32", 32, 0},
    [KT_I32] = {"I32", 32, 0},         [KT_F32] = {"F32", 32, 1},
    [KT_U64] = {"U64", 64, 0},         [KT_I64] = {"I64", 64, 0},
    [KT_F64] = {"F64", 64, 1},         [KT_C64] = {"C64", 64, 1},
    [KT_F8_E4M3] = {"F8_E4M3", 8, 1},  [KT_F8_E5M2] = {"F8_E5M2", 8, 1},
    [KT_F8_E8M0] = {"F8_E8M0", 8, 1},  [KT_F6_E2M3] = {"F6_E2M3", 6, 1},
    [KT_F6_E3M2] = {"F6_E3M2", 6, 1},  [KT_F4] = {"F4", 4, 1},
};

int kt_dtype_from_name(const char *name) {
    for (int i = 0; i < KT_DTYPE_COUNT; i++)
        if (strcmp(dtype_table[i].name, name) == 0) return i;
    return -1;
}

const char *kt_dtype_name(kt_dtype t) { return dtype_table[t].name; }
unsigned kt_dtype_bits(kt_dtype t) { return dtype_table[t].bits; }
int kt_dtype_is_float(kt_dtype t) { return dtype_table[t].is_float; }

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
float kt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) {
        /* inf, or NaN made quiet with its payload kept (as F16C and MLX do) */
        u = sign | 0x7f800000u | (man ? 0x400000u : 0) | (man << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (man << 13);  /* normal: rebias 15 -> 127 */
    } else if (man == 0) {
        u = sign;                                      /* signed zero */
    } else {
        /* subnormal: value = man * 2^-24; normalise it */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400u));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t kt_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)                               /* NaN: quiet, keep top payload */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u)                              /* rounds to >= 65520: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (a >= 0x38800000u) {                            /* normal f16 range (>= 2^-14) */
        uint32_t r = a - 0x38000000u;                  /* rebias 127 -> 15 */
        r += 0xfffu + ((r >> 13) & 1u);                /* round to nearest even */
        return (uint16_t)(sign | (r >> 13));
    }
    if (a < 0x33000000u) return sign;                  /* below half the smallest subnormal */
    /* subnormal f16: shift the full mantissa right, round to nearest even */
    uint32_t exp = a >> 23;
    uint32_t man = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - exp;                        /* 14..24 for this range */
    uint32_t q = man >> shift;
    uint32_t rem = man & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

/* Rows come straight from safetensors files, whose tensors need not be
 * aligned (MLX pads nothing), so every element goes through memcpy, which
 * compiles to a plain unaligned load or store. */
static inline uint16_t load16(const uint16_t *p, size_t i) {
    uint16_t v;
    memcpy(&v, (const unsigned char *)p + 2 * i, 2);
    return v;
}
static inline float loadf(const float *p, size_t i) {
    float v;
    memcpy(&v, (const unsigned char *)p + 4 * i, 4);
    return v;
}
static inline void store16(uint16_t *p, size_t i, uint16_t v) { memcpy((unsigned char *)p + 2 * i, &v, 2); }
static inline void storef(float *p, size_t i, float v) { memcpy((unsigned char *)p + 4 * i, &v, 4); }

void kt_bf16_to_f32_row_ref(const uint16_t *in, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) storef(out, i, kt_bf16_to_f32(load16(in, i)));
}
void kt_f32_to_bf16_row_ref(const float *in, uint16_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) store16(out, i, kt_f32_to_bf16(loadf(in, i)));
}
void kt_f16_to_f32_row_ref(const uint16_t *in, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) storef(out, i, kt_f16_to_f32(load16(in, i)));
}
void kt_f32_to_f16_row_ref(const float *in, uint16_t *out, size_t n) {
    for (size_t i = 0; i < n; i++) store16(out, i, kt_f32_to_f16(loadf(in, i)));
}

int kt_row_to_f32(kt_dtype t, const void *in, float *out, size_t n) {
    switch (t) {
    case KT_BF16: kt_bf16_to_f32_row(in, out, n); return 0;
    case KT_F16: kt_f16_to_f32_row(in, out, n); return 0;
    case KT_F32: memcpy(out, in, n * 4); return 0;
    default: return -1;
    }
}

int kt_row_from_f32(kt_dtype t, const float *in, void *out, size_t n) {
    switch (t) {
    case KT_BF16: kt_f32_to_bf16_row(in, out, n); return 0;
    case KT_F16: kt_f32_to_f16_row(in, out, n); return 0;
    case KT_F32: memcpy(out, in, n * 4); return 0;
    default: return -1;
    }
}
