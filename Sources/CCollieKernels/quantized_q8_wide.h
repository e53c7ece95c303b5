// Q8_0 weights against Q8_0 activations for several input rows on AVX-512 VNNI (levels 3 and 4), included once by
// quantized_q8.c. The 256-bit body of quantized_q8_simd.h spends, per block and input row, a sign flip, a vpdpbusd,
// a conversion, a scale product and an FMA on 8 lanes that each hold only 4 of the block's 32 products, so the
// float work is 8 times per block what the block needs. Here each 512-bit accumulator lane sums 16 products of one
// block instead (two lanes per block, eight blocks per register):
//
//   - the activations of a call are laid out once (wide_prepare) so that 4 chained vpdpbusd cover 8 blocks: vector j
//     holds bytes 8j ..< 8j + 8 of each of the 8 blocks, block i in qword i; the weights get the same layout in
//     registers from 4 two-block loads, 4 vpermt2q and 4 vshufi64x2 per 8 blocks, shared by every input row;
//   - the weights become unsigned (w + 128: an xor) and the activations stay signed, so Σ (w + 128)·x − 128·Σx is the
//     block's exact integer sum; 128·Σx (per lane, from the activations alone) is the accumulator's starting value;
//   - each block's scale d_w·d_x multiplies its two lanes once: one conversion, one product and one FMA per 8
//     blocks and input row, instead of 8 of each.
//
// Blocks past the last whole group of 8 run in pairs (one register: lanes 0–7 the first block, 8–15 the second) and
// an odd last block as a pair with an empty second half. The integer sums equal ggml's (vec_dot_q8_0_q8_0); only the
// order the per-block float products are added differs (each block's product split over its lanes).

#define TARGET_WIDE __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

/// Bytes per input row and group of 8 blocks in the wide layout: 4 × 64 activation bytes, 64 bytes of int32 lane
/// starts (−128 · Σ of the lane's activations), 64 bytes of float lane scales (d_x of the lane's block).
#define WIDE_GROUP 384
/// Bytes per input row and tail pair: 64 activation bytes, 64 of lane starts, 64 of lane scales.
#define WIDE_PAIR 192

/// The activations of one call in the wide layout (see above), 64-byte aligned, `stride` bytes per input row.
typedef struct {
    uint8_t *data;
    size_t rows, nb, groups, pairs, stride;
} wide_prepared;

/// Fills `p` from Q8_0 activations `xq` (rows × nb blocks); 0 when memory ran out.
static int wide_prepare(const uint8_t *xq, size_t in, size_t rows, wide_prepared *p) {
    const size_t nb = in / 32, groups = nb / 8, pairs = (nb - 8 * groups + 1) / 2;
    const size_t stride = groups * WIDE_GROUP + pairs * WIDE_PAIR;
    *p = (wide_prepared){.rows = rows, .nb = nb, .groups = groups, .pairs = pairs, .stride = stride};
    p->data = aligned_alloc(64, rows * stride);
    if (!p->data) return 0;
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *x = xq + r * nb * 34;
        uint8_t *row = p->data + r * stride;
        for (size_t g = 0; g < groups; g++) {
            uint8_t *dst = row + g * WIDE_GROUP;
            int32_t start[16];
            float scale[16];
            for (int i = 0; i < 8; i++) {  // block i of the group: bytes 8j … 8j + 7 go to qword i of vector j
                const uint8_t *xb = x + (8 * g + (size_t)i) * 34;
                const int8_t *q = (const int8_t *)(xb + 2);
                int sum[2] = {0, 0};
                for (int j = 0; j < 4; j++) {
                    memcpy(dst + 64 * j + 8 * i, q + 8 * j, 8);
                    for (int m = 0; m < 8; m++) sum[m / 4] += q[8 * j + m];
                }
                start[2 * i] = -128 * sum[0];
                start[2 * i + 1] = -128 * sum[1];
                scale[2 * i] = scale[2 * i + 1] = ggml_load_half(xb);
            }
            memcpy(dst + 256, start, 64);
            memcpy(dst + 320, scale, 64);
        }
        for (size_t t = 0; t < pairs; t++) {
            uint8_t *dst = row + groups * WIDE_GROUP + t * WIDE_PAIR;
            int32_t start[16] = {0};
            float scale[16] = {0};
            memset(dst, 0, 64);
            for (int h = 0; h < 2; h++) {
                const size_t b = 8 * groups + 2 * t + (size_t)h;
                if (b >= nb) break;  // an odd last block: the second half stays zero
                const uint8_t *xb = x + b * 34;
                const int8_t *q = (const int8_t *)(xb + 2);
                memcpy(dst + 32 * h, q, 32);
                for (int l = 0; l < 8; l++) {
                    start[8 * h + l] = -128 * (q[4 * l] + q[4 * l + 1] + q[4 * l + 2] + q[4 * l + 3]);
                    scale[8 * h + l] = ggml_load_half(xb);
                }
            }
            memcpy(dst + 64, start, 64);
            memcpy(dst + 128, scale, 64);
        }
    }
    return 1;
}

TARGET_WIDE static ALWAYS_INLINE uint16_t wide_half_bits(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

/// Blocks 0 ..< 8 at b (one weight row's group) in the wide layout, as unsigned bytes (w + 128), and each lane's d_w.
TARGET_WIDE static ALWAYS_INLINE void wide_group(const uint8_t *b, __m512i v[4], __m512 *dw) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512i pair[4];
    for (int m = 0; m < 4; m++)  // blocks 2m, 2m + 1: qwords 0–3 and 4–7
        pair[m] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b + 68 * m + 2))),
                                                      _mm256_loadu_si256((const __m256i *)(b + 68 * m + 36)), 1), flip);
    // Qwords j of blocks 0–3 (4–7), for j = 0, 1 and 2, 3.
    const __m512i even = _mm512_setr_epi64(0, 4, 8, 12, 1, 5, 9, 13), odd = _mm512_setr_epi64(2, 6, 10, 14, 3, 7, 11, 15);
    const __m512i a0 = _mm512_permutex2var_epi64(pair[0], even, pair[1]), a1 = _mm512_permutex2var_epi64(pair[0], odd, pair[1]);
    const __m512i b0 = _mm512_permutex2var_epi64(pair[2], even, pair[3]), b1 = _mm512_permutex2var_epi64(pair[2], odd, pair[3]);
    v[0] = _mm512_shuffle_i64x2(a0, b0, 0x44);
    v[1] = _mm512_shuffle_i64x2(a0, b0, 0xEE);
    v[2] = _mm512_shuffle_i64x2(a1, b1, 0x44);
    v[3] = _mm512_shuffle_i64x2(a1, b1, 0xEE);
    const __m128i h = _mm_setr_epi16((short)wide_half_bits(b), (short)wide_half_bits(b + 34), (short)wide_half_bits(b + 68),
                                     (short)wide_half_bits(b + 102), (short)wide_half_bits(b + 136),
                                     (short)wide_half_bits(b + 170), (short)wide_half_bits(b + 204),
                                     (short)wide_half_bits(b + 238));
    *dw = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                _mm512_castps256_ps512(_mm256_cvtph_ps(h)));
}

/// Blocks 0 and (when `two`) 1 at b as one register (lanes 0–7, 8–15), unsigned, and each lane's d_w (0 when absent).
TARGET_WIDE static ALWAYS_INLINE void wide_pair(const uint8_t *b, int two, __m512i *v, __m512 *dw) {
    const __m256i low = _mm256_loadu_si256((const __m256i *)(b + 2));
    const __m256i high = two ? _mm256_loadu_si256((const __m256i *)(b + 36)) : _mm256_setzero_si256();
    *v = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1), _mm512_set1_epi8((char)0x80));
    const float d0 = _cvtsh_ss(wide_half_bits(b)), d1 = two ? _cvtsh_ss(wide_half_bits(b + 34)) : 0;
    *dw = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d0), _mm512_set1_ps(d1));
}

/// y[(r0 + q)·out + o[k]] for NW weight rows o[k] and NX prepared input rows from r0 (NW, NX constants at each call
/// site: the NW·NX accumulators stay in registers).
TARGET_WIDE static ALWAYS_INLINE void wide_tile(const uint8_t *w, const size_t *o, int NW, const wide_prepared *p,
                                                size_t r0, int NX, float *y, size_t out) {
    const size_t row_bytes = p->nb * 34;
    __m512 acc[2][8];
    for (int k = 0; k < NW; k++)
        for (int q = 0; q < NX; q++) acc[k][q] = _mm512_setzero_ps();
    const uint8_t *x0 = p->data + r0 * p->stride;
    for (size_t g = 0; g < p->groups; g++) {
        __m512i v[2][4];
        __m512 dw[2];
        for (int k = 0; k < NW; k++) wide_group(w + o[k] * row_bytes + g * 8 * 34, v[k], &dw[k]);
        for (int q = 0; q < NX; q++) {
            const uint8_t *x = x0 + q * p->stride + g * WIDE_GROUP;
            const __m512i x_0 = _mm512_load_si512(x), x_1 = _mm512_load_si512(x + 64);
            const __m512i x_2 = _mm512_load_si512(x + 128), x_3 = _mm512_load_si512(x + 192);
            const __m512i start = _mm512_load_si512(x + 256);
            const __m512 dx = _mm512_load_ps(x + 320);
            for (int k = 0; k < NW; k++) {
                __m512i s = _mm512_dpbusd_epi32(start, v[k][0], x_0);
                s = _mm512_dpbusd_epi32(s, v[k][1], x_1);
                s = _mm512_dpbusd_epi32(s, v[k][2], x_2);
                s = _mm512_dpbusd_epi32(s, v[k][3], x_3);
                acc[k][q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[k], dx), acc[k][q]);
            }
        }
    }
    for (size_t t = 0; t < p->pairs; t++) {
        const size_t b = 8 * p->groups + 2 * t;
        const int two = b + 1 < p->nb;
        __m512i v[2];
        __m512 dw[2];
        for (int k = 0; k < NW; k++) wide_pair(w + o[k] * row_bytes + b * 34, two, &v[k], &dw[k]);
        for (int q = 0; q < NX; q++) {
            const uint8_t *x = x0 + q * p->stride + p->groups * WIDE_GROUP + t * WIDE_PAIR;
            const __m512i xv = _mm512_load_si512(x), start = _mm512_load_si512(x + 64);
            const __m512 dx = _mm512_load_ps(x + 128);
            for (int k = 0; k < NW; k++) {
                const __m512i s = _mm512_dpbusd_epi32(start, v[k], xv);
                acc[k][q] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[k], dx), acc[k][q]);
            }
        }
    }
    // The NW·NX lane sums at once: 16 registers (zeros past NW·NX) folded pairwise into one, 45 instructions instead
    // of 8 per register; accumulator i ends in lane 4·(i % 4) + i / 4.
    __m512 v[16];
    for (int i = 0; i < 16; i++) v[i] = i < NW * NX ? acc[i / NX][i % NX] : _mm512_setzero_ps();
    for (int i = 0; i < 8; i++)
        v[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        v[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x88), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)
        v[i] = _mm512_add_ps(_mm512_shuffle_ps(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_ps(v[2 * i], v[2 * i + 1], 0xEE));
    float sums[16];
    _mm512_storeu_ps(sums, _mm512_add_ps(_mm512_shuffle_ps(v[0], v[1], 0x88), _mm512_shuffle_ps(v[0], v[1], 0xDD)));
    for (int i = 0; i < NW * NX; i++) y[(r0 + (size_t)(i % NX)) * out + o[i / NX]] = sums[4 * (i % 4) + i / 4];
}

/// Every prepared input row against weight rows o[0 ..< NW]: tiles of 8 input rows, then one of the rest.
TARGET_WIDE static ALWAYS_INLINE void wide_rows(const uint8_t *w, const size_t *o, int NW, const wide_prepared *p,
                                                float *y, size_t out) {
    size_t r = 0;
    for (; r + 8 <= p->rows; r += 8) wide_tile(w, o, NW, p, r, 8, y, out);
    switch (p->rows - r) {
#define REST(n) case n: wide_tile(w, o, NW, p, r, n, y, out); break;
    REST(1) REST(2) REST(3) REST(4) REST(5) REST(6) REST(7)
#undef REST
    default: break;
    }
}

/// Rows [begin, end) as tiles of 2 weight rows, one from each half of the range (2 memory streams, as
/// quantized_q8_simd.h's spread), then a last odd row alone.
TARGET_WIDE static void qgemv_q8_0_wide(const uint8_t *w, const wide_prepared *p, float *y, size_t out, size_t begin,
                                        size_t end) {
    const size_t half = (end - begin) / 2;
    for (size_t j = 0; j < half; j++) {
        const size_t o[2] = {begin + j, begin + half + j};
        wide_rows(w, o, 2, p, y, out);
    }
    for (size_t rest = begin + 2 * half; rest < end; rest++) wide_rows(w, &rest, 1, p, y, out);
}
