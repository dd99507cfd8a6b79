// AVX2 and AVX-512 dequantization. Each element is computed with the same operations in the
// same order as lk_dequant_ref (multiply, then add/subtract; never fused), so results are equal.
#include "internal.h"

#if LK_X86

// ---- AVX-512 -------------------------------------------------------------------------------
LK_AVX512 LK_INLINE __m512 u8x16_ps512(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(v)); }
LK_AVX512 LK_INLINE __m512 i8x16_ps512(__m128i v) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)); }

LK_AVX512 void lk_dequant_avx512(int type, const void *src, float *y, int64_t n) {
  int64_t be = lk_block_elems(type), nb = be ? n / be : 0;
  const __m128i m4 = _mm_set1_epi8(0x0F);
  switch (type) {
  case LK_F16: case LK_BF16: {
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      __m256i v = _mm256_loadu_si256((const __m256i *)(h + i));
      __m512 f = type == LK_F16 ? _mm512_cvtph_ps(v) : _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
      _mm512_storeu_ps(y + i, f);
    }
    for (; i < n; i++) y[i] = type == LK_F16 ? lk_h2f(h[i]) : lk_bf2f(h[i]);
    return;
  }
  case LK_Q4_0: {
    const block_q4_0 *b = src;
    const __m512 eight = _mm512_set1_ps(8.0f);
    for (int64_t i = 0; i < nb; i++, y += QK) {
      __m512 d = _mm512_set1_ps(lk_h2f(b[i].d));
      __m128i q = _mm_loadu_si128((const __m128i *)b[i].qs);
      __m512 lo = _mm512_sub_ps(u8x16_ps512(_mm_and_si128(q, m4)), eight);
      __m512 hi = _mm512_sub_ps(u8x16_ps512(_mm_and_si128(_mm_srli_epi16(q, 4), m4)), eight);
      _mm512_storeu_ps(y, _mm512_mul_ps(lo, d));
      _mm512_storeu_ps(y + 16, _mm512_mul_ps(hi, d));
    }
    return;
  }
  case LK_Q4_1: {
    const block_q4_1 *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK) {
      __m512 d = _mm512_set1_ps(lk_h2f(b[i].d)), m = _mm512_set1_ps(lk_h2f(b[i].m));
      __m128i q = _mm_loadu_si128((const __m128i *)b[i].qs);
      __m512 lo = u8x16_ps512(_mm_and_si128(q, m4));
      __m512 hi = u8x16_ps512(_mm_and_si128(_mm_srli_epi16(q, 4), m4));
      _mm512_storeu_ps(y, _mm512_add_ps(_mm512_mul_ps(lo, d), m));
      _mm512_storeu_ps(y + 16, _mm512_add_ps(_mm512_mul_ps(hi, d), m));
    }
    return;
  }
  case LK_Q8_0: case LK_Q8_1: {
    int64_t bs = lk_block_bytes(type), off = type == LK_Q8_0 ? 2 : 4;
    for (int64_t i = 0; i < nb; i++, y += QK) {
      const uint8_t *p = (const uint8_t *)src + i * bs;
      uint16_t dh;
      memcpy(&dh, p, 2);
      __m512 d = _mm512_set1_ps(lk_h2f(dh));
      _mm512_storeu_ps(y, _mm512_mul_ps(i8x16_ps512(_mm_loadu_si128((const __m128i *)(p + off))), d));
      _mm512_storeu_ps(y + 16, _mm512_mul_ps(i8x16_ps512(_mm_loadu_si128((const __m128i *)(p + off + 16))), d));
    }
    return;
  }
  case LK_Q8_K: {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
      __m512 d = _mm512_set1_ps(b[i].d);
      for (int j = 0; j < QK_K; j += 16)
        _mm512_storeu_ps(y + j, _mm512_mul_ps(d, i8x16_ps512(_mm_loadu_si128((const __m128i *)(b[i].qs + j)))));
    }
    return;
  }
  case LK_Q4_K: {
    const block_q4_K *b = src;
    for (int64_t i = 0; i < nb; i++) {
      float d = lk_h2f(b[i].d), dmin = lk_h2f(b[i].dmin);
      const uint8_t *q = b[i].qs;
      for (int c = 0; c < 4; c++, q += 32, y += 64) {
        uint8_t sc, m;
        lk_q4k_scale_min(2 * c, b[i].scales, &sc, &m);
        __m512 d1 = _mm512_set1_ps(d * (float)sc), m1 = _mm512_set1_ps(dmin * (float)m);
        lk_q4k_scale_min(2 * c + 1, b[i].scales, &sc, &m);
        __m512 d2 = _mm512_set1_ps(d * (float)sc), m2 = _mm512_set1_ps(dmin * (float)m);
        for (int h = 0; h < 2; h++) {
          __m128i v = _mm_loadu_si128((const __m128i *)(q + 16 * h));
          __m512 lo = u8x16_ps512(_mm_and_si128(v, m4)), hi = u8x16_ps512(_mm_and_si128(_mm_srli_epi16(v, 4), m4));
          _mm512_storeu_ps(y + 16 * h, _mm512_sub_ps(_mm512_mul_ps(d1, lo), m1));
          _mm512_storeu_ps(y + 32 + 16 * h, _mm512_sub_ps(_mm512_mul_ps(d2, hi), m2));
        }
      }
    }
    return;
  }
  case LK_Q6_K: {
    const block_q6_K *b = src;
    const __m128i m3 = _mm_set1_epi8(3);
    const __m512i k32 = _mm512_set1_epi32(32);
    for (int64_t i = 0; i < nb; i++) {
      float d = lk_h2f(b[i].d);
      const uint8_t *ql = b[i].ql, *qh = b[i].qh;
      const int8_t *sc = b[i].scales;
      for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l0 = 0; l0 < 32; l0 += 16) {
          int is = l0 / 16;
          __m128i a = _mm_loadu_si128((const __m128i *)(ql + l0)), c = _mm_loadu_si128((const __m128i *)(ql + l0 + 32));
          __m128i hh = _mm_loadu_si128((const __m128i *)(qh + l0));
          __m128i q[4] = {
              _mm_or_si128(_mm_and_si128(a, m4), _mm_slli_epi16(_mm_and_si128(hh, m3), 4)),
              _mm_or_si128(_mm_and_si128(c, m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hh, 2), m3), 4)),
              _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hh, 4), m3), 4)),
              _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hh, 6), m3), 4))};
          for (int k = 0; k < 4; k++) {
            __m512 ds = _mm512_set1_ps(d * (float)sc[is + 2 * k]);
            __m512 qf = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(q[k]), k32));
            _mm512_storeu_ps(y + l0 + 32 * k, _mm512_mul_ps(ds, qf));
          }
        }
      }
    }
    return;
  }
  default: lk_dequant_ref(type, src, y, n); return;
  }
}

// ---- AVX2 ----------------------------------------------------------------------------------
LK_AVX2 LK_INLINE __m256 u8x8_ps256(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }
LK_AVX2 LK_INLINE __m256 i8x8_ps256(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }

LK_AVX2 void lk_dequant_avx2(int type, const void *src, float *y, int64_t n) {
  int64_t be = lk_block_elems(type), nb = be ? n / be : 0;
  const __m128i m4 = _mm_set1_epi8(0x0F);
  switch (type) {
  case LK_F16: case LK_BF16: {
    const uint16_t *h = src;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
      __m128i v = _mm_loadu_si128((const __m128i *)(h + i));
      __m256 f = type == LK_F16 ? _mm256_cvtph_ps(v) : _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
      _mm256_storeu_ps(y + i, f);
    }
    for (; i < n; i++) y[i] = type == LK_F16 ? lk_h2f(h[i]) : lk_bf2f(h[i]);
    return;
  }
  case LK_Q4_0: case LK_Q4_1: {
    const __m256 eight = _mm256_set1_ps(8.0f);
    int64_t bs = lk_block_bytes(type);
    for (int64_t i = 0; i < nb; i++, y += QK) {
      const uint8_t *p = (const uint8_t *)src + i * bs;
      uint16_t dh, mh = 0;
      memcpy(&dh, p, 2);
      if (type == LK_Q4_1) memcpy(&mh, p + 2, 2);
      __m256 d = _mm256_set1_ps(lk_h2f(dh)), m = _mm256_set1_ps(lk_h2f(mh));
      __m128i q = _mm_loadu_si128((const __m128i *)(p + (type == LK_Q4_1 ? 4 : 2)));
      __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
      __m256 f[4] = {u8x8_ps256(lo), u8x8_ps256(_mm_srli_si128(lo, 8)), u8x8_ps256(hi), u8x8_ps256(_mm_srli_si128(hi, 8))};
      for (int k = 0; k < 4; k++) {
        __m256 v = type == LK_Q4_0 ? _mm256_mul_ps(_mm256_sub_ps(f[k], eight), d) : _mm256_add_ps(_mm256_mul_ps(f[k], d), m);
        _mm256_storeu_ps(y + 8 * k, v);
      }
    }
    return;
  }
  case LK_Q8_0: case LK_Q8_1: {
    int64_t bs = lk_block_bytes(type), off = type == LK_Q8_0 ? 2 : 4;
    for (int64_t i = 0; i < nb; i++, y += QK) {
      const uint8_t *p = (const uint8_t *)src + i * bs;
      uint16_t dh;
      memcpy(&dh, p, 2);
      __m256 d = _mm256_set1_ps(lk_h2f(dh));
      for (int k = 0; k < 4; k++)
        _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(i8x8_ps256(_mm_loadl_epi64((const __m128i *)(p + off + 8 * k))), d));
    }
    return;
  }
  case LK_Q8_K: {
    const block_q8_K *b = src;
    for (int64_t i = 0; i < nb; i++, y += QK_K) {
      __m256 d = _mm256_set1_ps(b[i].d);
      for (int j = 0; j < QK_K; j += 8)
        _mm256_storeu_ps(y + j, _mm256_mul_ps(d, i8x8_ps256(_mm_loadl_epi64((const __m128i *)(b[i].qs + j)))));
    }
    return;
  }
  case LK_Q4_K: {
    const block_q4_K *b = src;
    for (int64_t i = 0; i < nb; i++) {
      float d = lk_h2f(b[i].d), dmin = lk_h2f(b[i].dmin);
      const uint8_t *q = b[i].qs;
      for (int c = 0; c < 4; c++, q += 32, y += 64) {
        uint8_t sc, m;
        lk_q4k_scale_min(2 * c, b[i].scales, &sc, &m);
        __m256 d1 = _mm256_set1_ps(d * (float)sc), m1 = _mm256_set1_ps(dmin * (float)m);
        lk_q4k_scale_min(2 * c + 1, b[i].scales, &sc, &m);
        __m256 d2 = _mm256_set1_ps(d * (float)sc), m2 = _mm256_set1_ps(dmin * (float)m);
        for (int h = 0; h < 4; h++) {
          __m128i v = _mm_loadl_epi64((const __m128i *)(q + 8 * h));
          __m256 lo = u8x8_ps256(_mm_and_si128(v, m4)), hi = u8x8_ps256(_mm_and_si128(_mm_srli_epi16(v, 4), m4));
          _mm256_storeu_ps(y + 8 * h, _mm256_sub_ps(_mm256_mul_ps(d1, lo), m1));
          _mm256_storeu_ps(y + 32 + 8 * h, _mm256_sub_ps(_mm256_mul_ps(d2, hi), m2));
        }
      }
    }
    return;
  }
  case LK_Q6_K: {
    const block_q6_K *b = src;
    const __m128i m3 = _mm_set1_epi8(3);
    const __m256i k32 = _mm256_set1_epi32(32);
    for (int64_t i = 0; i < nb; i++) {
      float d = lk_h2f(b[i].d);
      const uint8_t *ql = b[i].ql, *qh = b[i].qh;
      const int8_t *sc = b[i].scales;
      for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l0 = 0; l0 < 32; l0 += 8) {
          int is = l0 / 16;
          __m128i a = _mm_loadl_epi64((const __m128i *)(ql + l0)), c = _mm_loadl_epi64((const __m128i *)(ql + l0 + 32));
          __m128i hh = _mm_loadl_epi64((const __m128i *)(qh + l0));
          __m128i q[4] = {
              _mm_or_si128(_mm_and_si128(a, m4), _mm_slli_epi16(_mm_and_si128(hh, m3), 4)),
              _mm_or_si128(_mm_and_si128(c, m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hh, 2), m3), 4)),
              _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hh, 4), m3), 4)),
              _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), m4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(hh, 6), m3), 4))};
          for (int k = 0; k < 4; k++) {
            __m256 ds = _mm256_set1_ps(d * (float)sc[is + 2 * k]);
            __m256 qf = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(q[k]), k32));
            _mm256_storeu_ps(y + l0 + 32 * k, _mm256_mul_ps(ds, qf));
          }
        }
      }
    }
    return;
  }
  default: lk_dequant_ref(type, src, y, n); return;
  }
}

#endif
