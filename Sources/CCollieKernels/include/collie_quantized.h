// Kernels on GGML's quantized blocks: a weight matrix kept in the blocks a GGUF file stores (or that Collie quantized
// at load), used without ever widening the whole matrix. Each matrix is row-major: row o holds in / block_elements
// blocks of block_bytes each, so a row is `collie_block_row_bytes(format, in)` bytes and rows follow each other.
//
// Formats are GGML's type codes (GGMLType in CollieIO). Dequantization equals gguf's `quants.dequantize` bit for bit;
// quantization equals ggml's `quantize_row_*_ref` byte for byte. Run-time dispatch (collie_kernel_level): AVX-512
// VNNI / AVX-512 (F+BW) / AVX2+FMA / portable C, and AVX512_BF16 where a kernel says so; every level gives the results
// its comment promises, so tests compare each level (limited with collie_kernel_limit_level) with the reference.
#ifndef COLLIE_QUANTIZED_H
#define COLLIE_QUANTIZED_H

#include <stddef.h>
#include <stdint.h>

/// GGML's type codes of the block formats these kernels take.
enum {
    COLLIE_Q4_0 = 2,
    COLLIE_Q4_1 = 3,
    COLLIE_Q5_0 = 6,
    COLLIE_Q5_1 = 7,
    COLLIE_Q8_0 = 8,
    COLLIE_Q4_K = 12,
    COLLIE_Q5_K = 13,
    COLLIE_Q6_K = 14,
};

/// Whether `format` is one of the codes above.
int collie_block_format_supported(int format);
/// Values per block: 32 (Q4_0 … Q8_0) or 256 (K-quants); 0 for an unsupported format.
size_t collie_block_elements(int format);
/// Bytes per block; 0 for an unsupported format.
size_t collie_block_bytes(int format);
/// Bytes of one row of `columns` values (a multiple of the block's values).
size_t collie_block_row_bytes(int format, size_t columns);

// MARK: - Float activations (exact: the dequantized float32 weights times x, up to summation order)

/// dst[r·columns + i] = the float32 value of element i of row r, for `rows` consecutive rows starting at `blocks`.
void collie_dequantize_rows(int format, const void *blocks, float *dst, size_t rows, size_t columns);

/// y[r·out + o] = Σᵢ dequantized(w)[o, i] · x[r·in + i] for r < rows and o in [begin, end): the matrix-vector
/// product of decoding with float activations, reading each weight block once for every input row.
void collie_qgemv_f32(int format, const void *w, const float *x, float *y, size_t in, size_t out, size_t rows,
                      size_t begin, size_t end);

// MARK: - 8-bit activations (llama.cpp's arithmetic: x quantized per block, integer dot products)

/// The format x is quantized to for dot products with `format` weights: Q8_0 (Q4_0, Q5_0, Q8_0), Q8_1 (Q4_1, Q5_1)
/// or Q8_K (K-quants), as ggml's `vec_dot_type`; bytes of one row of `in` values in it.
size_t collie_activation_row_bytes(int format, size_t in);
/// Quantizes `rows` rows of `in` floats to the activation format of `format` (ggml's quantize_row_q8_0 / q8_1 /
/// q8_K), each row `collie_activation_row_bytes(format, in)` bytes in `xq`.
void collie_quantize_activations(int format, const float *x, void *xq, size_t in, size_t rows);
/// y[r·out + o] = ggml_vec_dot_<format>_<q8>(w row o, xq row r) for r < rows and o in [begin, end).
void collie_qgemv_q8(int format, const void *w, const void *xq, float *y, size_t in, size_t out, size_t rows,
                     size_t begin, size_t end);

// MARK: - bfloat16 activations (x rounded to bfloat16, integer weights times it in float32: AVX512_BF16's vdpbf16ps)

/// xb[i] = x[i] rounded to bfloat16 bits, to nearest even (HalfPrecision.bfloat16Bits); the same bits at every level.
void collie_activations_to_bf16(const float *x, uint16_t *xb, size_t n);
/// y[r·out + o] = Σᵢ dequantized(w)[o, i] · xb[r·in + i] for r < rows and o in [begin, end), with xb bfloat16 bits
/// (collie_activations_to_bf16): each 32-value group's integers dotted with xb in float32 (vdpbf16ps at level 4, plain
/// C below), times the group's scale, plus its min times Σ xb. Equals the dequantized weights times the rounded
/// activations up to float32 summation order.
void collie_qgemv_bf16(int format, const void *w, const uint16_t *xb, float *y, size_t in, size_t out, size_t rows,
                       size_t begin, size_t end);

// MARK: - Quantization (load-time `quantize:`)

/// Quantizes `rows` rows of `columns` floats to `format` (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K), equal byte for byte
/// to ggml's quantize_row_<format>_ref. Returns 0 (writing nothing) for a format without a quantizer here.
int collie_quantize_rows(int format, const float *src, void *blocks, size_t rows, size_t columns);

#endif
