// The vector copies of collie_qgemv_q8, written once on 256-bit vectors and compiled three times by quantized_q8.c:
// AVX2 (level 1), AVX-512 F+BW+VL (level 2: the same instructions with 32 registers, so larger tiles stay in them)
// and AVX-512 VNNI (level 3: one vpdpbusd per 32 byte products instead of vpmaddubsw + vpmaddwd). Zen 4 runs 512-bit
// integer instructions as two 256-bit halves, so 256-bit vectors lose nothing there and one body serves every level.
//
// Every dot product is unsigned codes × signed activations (vpmaddubsw / vpdpbusd): Q4_0, Q5_0 and Q6_K subtract
// their offset (8, 16, 32) from the sum through the activations' sums instead of from each code; Q8_0 moves the
// weight's sign onto the activation (llama.cpp's sign trick). Integer sums are exact; each block's float scale
// multiplies its 8 lanes and the lanes are added at the end, so results differ from ggml's only in that order.
//
// Before including: ISA (name suffix), TARGET (the function attribute) and VNNI (1 for vpdpbusd).

#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, ISA)

#if VNNI
/// acc + Σ of each 4 products u·s (u unsigned, s signed bytes).
#define DOT(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
/// The lane scales for SDOT: a for lanes 0–3 (bytes 0–15), b for lanes 4–7.
#define SCALES(a, b) _mm256_setr_epi32((a), (a), (a), (a), (b), (b), (b), (b))
/// acc + DOT(0, u, s) · scales.
#define SDOT(acc, u, s, sv) _mm256_add_epi32((acc), _mm256_mullo_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), (u), (s)), (sv)))
#else
#define DOT(acc, u, s) _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#define SCALES(a, b) _mm256_set_m128i(_mm_set1_epi16((short)(b)), _mm_set1_epi16((short)(a)))
#define SDOT(acc, u, s, sv) _mm256_add_epi32((acc), _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), (sv)))
#endif

TARGET static ALWAYS_INLINE float FN(hsum)(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET static ALWAYS_INLINE float FN(half)(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/// 0x10 in byte j where bit j of the 32 bits at p is set (llama.cpp's bytes_from_bits_32).
TARGET static ALWAYS_INLINE __m256i FN(high_bits)(const uint8_t *p) {
    uint32_t bits;
    memcpy(&bits, p, 4);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)bits),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
                                          _mm256_set1_epi64x(-1));
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/// A 32-value weight block's codes as unsigned bytes in value order (Q8_0: the magnitudes).
TARGET static ALWAYS_INLINE __m256i FN(codes32)(int format, const uint8_t *b) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    switch (format) {
    case COLLIE_Q8_0: return _mm256_abs_epi8(_mm256_loadu_si256((const __m256i *)(b + 2)));
    case COLLIE_Q4_0: case COLLIE_Q4_1: {
        const __m128i q = _mm_loadu_si128((const __m128i *)(b + (format == COLLIE_Q4_0 ? 2 : 4)));
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low4);
    }
    default: {  // Q5_0, Q5_1
        const int at = format == COLLIE_Q5_0 ? 2 : 4;
        const __m128i q = _mm_loadu_si128((const __m128i *)(b + at + 4));
        return _mm256_or_si256(_mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low4), FN(high_bits)(b + at));
    }
    }
}

/// Rows o[0..<NW] × prepared input rows r0..<r0 + NX of a 32-value block format: y[(r0 + q)·out + o[w]].
TARGET static ALWAYS_INLINE void FN(tile32)(int format, const uint8_t *w, const size_t *o, int NW, const prepared *p,
                                            size_t r0, int NX, float *y, size_t out) {
    const size_t nb = p->n32, wbytes = collie_block_bytes(format);
    const int affine = format == COLLIE_Q4_1 || format == COLLIE_Q5_1;
    __m256 acc[4][8];
    for (int k = 0; k < NW; k++)
        for (int q = 0; q < NX; q++) acc[k][q] = _mm256_setzero_ps();
    for (size_t b = 0; b < nb; b++) {
        __m256i u[4], sign[4];
        __m256 m[4];
        float dw[4];
        for (int k = 0; k < NW; k++) {
            const uint8_t *wb = w + (o[k] * nb + b) * wbytes;
            u[k] = FN(codes32)(format, wb);
            if (format == COLLIE_Q8_0) sign[k] = _mm256_loadu_si256((const __m256i *)(wb + 2));
            if (affine) m[k] = _mm256_set1_ps(FN(half)(wb + 2));
            dw[k] = FN(half)(wb);
        }
        for (int q = 0; q < NX; q++) {
            const size_t g = (r0 + q) * nb + b;
            const __m256i x = _mm256_loadu_si256((const __m256i *)prepared_q(p, r0 + q, b));
            const __m256i bias = p->bias ? _mm256_loadu_si256((const __m256i *)(p->bias + 8 * g)) : _mm256_setzero_si256();
            const float dx = p->d[g];
            for (int k = 0; k < NW; k++) {
                const __m256i s = format == COLLIE_Q8_0 ? _mm256_sign_epi8(x, sign[k]) : x;
                const __m256i dot = DOT(bias, u[k], s);
                acc[k][q] = _mm256_fmadd_ps(_mm256_set1_ps(dw[k] * dx), _mm256_cvtepi32_ps(dot), acc[k][q]);
                // Q4_1, Q5_1: + m·s, as m·(s/8) in each of the 8 lanes (exact: s/8 is a power-of-two scaling).
                if (affine) acc[k][q] = _mm256_fmadd_ps(m[k], _mm256_broadcast_ss(p->s + g), acc[k][q]);
            }
        }
    }
    for (int k = 0; k < NW; k++)
        for (int q = 0; q < NX; q++) y[(r0 + q) * out + o[k]] = FN(hsum)(acc[k][q]);
}

/// The same for Q4_K, Q5_K and Q6_K (super-blocks of 256 against Q8_K activations read in place).
TARGET static ALWAYS_INLINE void FN(tile_k)(int format, const uint8_t *w, const size_t *o, int NW, const prepared *p,
                                            size_t r0, int NX, float *y, size_t out) {
    const size_t nb = p->n32 / 8, wbytes = collie_block_bytes(format);
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
    __m256 acc[4][8];
    for (int k = 0; k < NW; k++)
        for (int q = 0; q < NX; q++) acc[k][q] = _mm256_setzero_ps();
    for (size_t i = 0; i < nb; i++) {
        for (int k = 0; k < NW; k++) {
            const uint8_t *wb = w + (o[k] * nb + i) * wbytes;
            __m256i isum[8];
            for (int q = 0; q < NX; q++) isum[q] = _mm256_setzero_si256();
            __m256i correction;  // Q4_K, Q5_K: the mins per 16 values; Q6_K: the scales per 16 values
            if (format == COLLIE_Q6_K) {
                const int8_t *sc = (const int8_t *)(wb + 192);
                correction = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
                for (int n = 0; n < 2; n++) {
                    const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(wb + 64 * n));
                    const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(wb + 64 * n + 32));
                    const __m256i qh = _mm256_loadu_si256((const __m256i *)(wb + 128 + 32 * n));
                    __m256i c[4];
                    c[0] = _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4));
                    c[1] = _mm256_or_si256(_mm256_and_si256(ql1, low4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4));
                    c[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4));
                    c[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                                           _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4));
                    for (int j = 0; j < 4; j++) {
                        const int g = 8 * n + 2 * j;  // the 16-value scale of bytes 0–15; g + 1 for 16–31
                        const __m256i sv = SCALES(sc[g], sc[g + 1]);
                        for (int q = 0; q < NX; q++) {
                            const __m256i x = _mm256_loadu_si256(
                                (const __m256i *)(p->xq + (r0 + q) * p->xrow + i * 292 + 4 + 128 * n + 32 * j));
                            isum[q] = SDOT(isum[q], c[j], x, sv);
                        }
                    }
                }
            } else {
                uint8_t scales[8], mins[8], mins16[16];
                k_scales(wb + 4, scales, mins);
                for (int j = 0; j < 16; j++) mins16[j] = mins[j / 2];
                correction = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)mins16));
                const uint8_t *qs = wb + (format == COLLIE_Q5_K ? 48 : 16);
                for (int j = 0; j < 4; j++) {
                    const __m256i q4 = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
                    __m256i lo = _mm256_and_si256(q4, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q4, 4), low4);
                    if (format == COLLIE_Q5_K) {
                        const __m256i qh = _mm256_loadu_si256((const __m256i *)(wb + 16));
                        const __m256i bit = _mm256_set1_epi8(0x10);
                        lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j), 4), bit));
                        hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_slli_epi16(_mm256_srli_epi16(qh, 2 * j + 1), 4), bit));
                    }
                    const __m256i svlo = SCALES(scales[2 * j], scales[2 * j]);
                    const __m256i svhi = SCALES(scales[2 * j + 1], scales[2 * j + 1]);
                    for (int q = 0; q < NX; q++) {
                        const uint8_t *x = p->xq + (r0 + q) * p->xrow + i * 292 + 4 + 64 * j;
                        isum[q] = SDOT(isum[q], lo, _mm256_loadu_si256((const __m256i *)x), svlo);
                        isum[q] = SDOT(isum[q], hi, _mm256_loadu_si256((const __m256i *)(x + 32)), svhi);
                    }
                }
            }
            const float dw = FN(half)(format == COLLIE_Q6_K ? wb + 208 : wb);
            const float dmin = format == COLLIE_Q6_K ? 0 : FN(half)(wb + 2);
            for (int q = 0; q < NX; q++) {
                const uint8_t *xb = p->xq + (r0 + q) * p->xrow + i * 292;
                float dx;
                memcpy(&dx, xb, 4);
                // Σ per 16 activations × the weight's per-16 mins (Q4_K, Q5_K) or scales (Q6_K), pairs summed.
                const __m256i sums = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(xb + 260)), correction);
                if (format == COLLIE_Q6_K) isum[q] = _mm256_sub_epi32(isum[q], _mm256_slli_epi32(sums, 5));  // codes − 32
                acc[k][q] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dx), _mm256_cvtepi32_ps(isum[q]), acc[k][q]);
                if (format != COLLIE_Q6_K)
                    acc[k][q] = _mm256_fmadd_ps(_mm256_set1_ps(-(dmin * dx)), _mm256_cvtepi32_ps(sums), acc[k][q]);
            }
        }
    }
    for (int k = 0; k < NW; k++)
        for (int q = 0; q < NX; q++) y[(r0 + q) * out + o[k]] = FN(hsum)(acc[k][q]);
}

/// Every prepared input row against weight rows o[0..<NW], NX input rows at a time.
TARGET static ALWAYS_INLINE void FN(rows)(int format, const uint8_t *w, const size_t *o, int NW, const prepared *p,
                                          float *y, size_t out, int NX) {
    size_t r = 0;
    const int k = activation_format(format) == ACT_Q8_K;
#define TILE(n)                                                                                                       \
    do {                                                                                                              \
        if (k) FN(tile_k)(format, w, o, NW, p, r, (n), y, out);                                                       \
        else FN(tile32)(format, w, o, NW, p, r, (n), y, out);                                                         \
        r += (n);                                                                                                     \
    } while (0)
    if (NX == 1) {
        for (; r < p->rows; ) TILE(1);
        return;
    }
    if (NX == 8)
        while (r + 8 <= p->rows) TILE(8);
    while (r + 4 <= p->rows) TILE(4);
    if (r + 2 <= p->rows) TILE(2);
    if (r < p->rows) TILE(1);
#undef TILE
}

/// Rows [begin, end) as tiles of NW weight rows, one from each of NW equal chunks (NW memory streams in flight).
TARGET static ALWAYS_INLINE void FN(spread)(int format, const uint8_t *w, const prepared *p, float *y, size_t out,
                                            size_t begin, size_t end, int NW, int NX) {
    size_t o[4], chunk = (end - begin) / NW;
    for (size_t j = 0; j < chunk; j++) {
        for (int k = 0; k < NW; k++) o[k] = begin + k * chunk + j;
        FN(rows)(format, w, o, NW, p, y, out, NX);
    }
    for (size_t rest = begin + NW * chunk; rest < end; rest++) FN(rows)(format, w, &rest, 1, p, y, out, NX);
}

TARGET static ALWAYS_INLINE void FN(qgemv_format)(int format, const uint8_t *w, const prepared *p, float *y, size_t out,
                                    size_t begin, size_t end) {
    // One input row streams 4 weight rows at once; more input rows share each decoded weight block between them.
    if (p->rows == 1) FN(spread)(format, w, p, y, out, begin, end, 4, 1);
    else if (p->rows < 8) FN(spread)(format, w, p, y, out, begin, end, 2, 4);
    else FN(spread)(format, w, p, y, out, begin, end, WIDE_NW, 8);
}

/// collie_qgemv_q8 for the formats with a vector copy (returns 0 for the others).
TARGET static int FN(qgemv)(int format, const uint8_t *w, const prepared *p, float *y, size_t out, size_t begin,
                            size_t end) {
    switch (format) {
    case COLLIE_Q4_0: FN(qgemv_format)(COLLIE_Q4_0, w, p, y, out, begin, end); return 1;
    case COLLIE_Q4_1: FN(qgemv_format)(COLLIE_Q4_1, w, p, y, out, begin, end); return 1;
    case COLLIE_Q5_0: FN(qgemv_format)(COLLIE_Q5_0, w, p, y, out, begin, end); return 1;
    case COLLIE_Q5_1: FN(qgemv_format)(COLLIE_Q5_1, w, p, y, out, begin, end); return 1;
    case COLLIE_Q8_0: FN(qgemv_format)(COLLIE_Q8_0, w, p, y, out, begin, end); return 1;
    case COLLIE_Q4_K: FN(qgemv_format)(COLLIE_Q4_K, w, p, y, out, begin, end); return 1;
    case COLLIE_Q5_K: FN(qgemv_format)(COLLIE_Q5_K, w, p, y, out, begin, end); return 1;
    case COLLIE_Q6_K: FN(qgemv_format)(COLLIE_Q6_K, w, p, y, out, begin, end); return 1;
    default: return 0;
    }
}

#undef DOT
#undef SCALES
#undef SDOT
#undef FN
#undef CAT
#undef CAT_
