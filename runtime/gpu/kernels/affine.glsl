// affine.glsl - reading MLX's affine format, shared by the kernels that do
// (qmv, qmm, qrow). Included after the kernel declares its packed codes as
// the buffer `w`: code_at() reads them, param() a scale or bias word.

// element I of an array of DTYPE values held in 32-bit WORDs (gpu_abi.h)
float param(uint word, uint i, uint dtype) {
    if (dtype == KT_GPU_F32) return uintBitsToFloat(word);
    uint h = (i & 1u) != 0u ? word >> 16 : word & 0xffffu;
    return dtype == KT_GPU_BF16 ? uintBitsToFloat(h << 16) : unpackHalf2x16(h).x;
}

// the word of element I of such an array
uint param_word(uint i, uint dtype) { return dtype == KT_GPU_F32 ? i : i >> 1; }

// the code of flat element E of a matrix of BITS-bit codes starting at word
// W_OFFSET: one word, or two for a code that straddles (3, 5, 6 bits)
uint code_at(uint e, uint bits, uint w_offset) {
    uint bit = e * bits, word = w_offset + (bit >> 5), shift = bit & 31u;
    uint v = w[word] >> shift;
    if (shift + bits > 32u) v |= w[word + 1u] << (32u - shift);
    return v & ((1u << bits) - 1u);
}
