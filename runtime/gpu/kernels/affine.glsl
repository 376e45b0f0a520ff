// affine.glsl - reading MLX's affine format, shared by the kernels that do
// (qmv, qmm, qrow), and reading values at any byte of a buffer of words.
//
// Weights are read where the model file has them (imported without a copy),
// and a safetensors file aligns nothing: MLX and mlx_lm.convert write the
// header unpadded, so a tensor may start at any byte. Every offset into a
// weight buffer is therefore in bytes, and a value that straddles two words
// is put together from both.

// The 32 bits from byte A of the word array B (a macro: GLSL passes no
// buffers to functions). An unaligned A reads the next word too; the hosts
// keep one there (buffers end on a page, or a word past the data).
#define KT_WORD_AT(B, A) \
    ((((A) & 3u) == 0u) ? B[(A) >> 2] \
                        : ((B[(A) >> 2] >> (((A) & 3u) * 8u)) | (B[((A) >> 2) + 1u] << (32u - ((A) & 3u) * 8u))))

// The 16 bits from byte A of B in the low half: a second word only when
// they straddle (A at the last byte of a word), so an aligned half costs one
// load as before.
#define KT_HALF_AT(B, A) \
    ((((A) & 3u) == 3u) ? ((B[(A) >> 2] >> 24) | (B[((A) >> 2) + 1u] << 8)) : (B[(A) >> 2] >> (((A) & 3u) * 8u)))

// the bits of the DTYPE value from byte A of B (value_of reads them)
#define KT_VALUE_AT(B, A, DTYPE) ((DTYPE) == KT_GPU_F32 ? KT_WORD_AT(B, A) : KT_HALF_AT(B, A))

// bytes per value of DTYPE
uint dtype_bytes(uint dtype) { return dtype == KT_GPU_F32 ? 4u : 2u; }

// the value of DTYPE whose bits start at the low end of V
float value_of(uint v, uint dtype) {
    if (dtype == KT_GPU_F32) return uintBitsToFloat(v);
    uint h = v & 0xffffu;
    return dtype == KT_GPU_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

// the code of flat element E of a matrix of BITS-bit codes starting at byte
// W_BYTE of `w`: one word, or two for a code that straddles (3, 5, 6 bits,
// or any width when the matrix starts inside a word)
uint code_at(uint e, uint bits, uint w_byte) {
    uint bit = w_byte * 8u + e * bits, word = bit >> 5, shift = bit & 31u;
    uint v = w[word] >> shift;
    if (shift + bits > 32u) v |= w[word + 1u] << (32u - shift);
    return v & ((1u << bits) - 1u);
}
