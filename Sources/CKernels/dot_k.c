// Q4_K and Q6_K weight rows · Q8_K activation rows, AVX2 and AVX-512 VNNI (the scalar versions
// are in dot_scalar.c). Per 256-element super-block the sub-block dots are scaled in int32 and
// converted to float once; Q4_K mins and Q6_K's "-32" use the activation's 16-element sums.
#include "internal.h"

#if LK_X86

/// The eight 6-bit scales and mins of a Q4_K super-block.
LK_INLINE void q4k_scales(const uint8_t *s, uint8_t *sc, uint8_t *m) {
  for (int j = 0; j < 8; j++) lk_q4k_scale_min(j, s, sc + j, m + j);
}

LK_INLINE int q4k_minsum(const uint8_t *m, const int16_t *bsums) {
  int s = 0;
  for (int j = 0; j < 8; j++) s += m[j] * (bsums[2 * j] + bsums[2 * j + 1]);
  return s;
}

// ---- AVX-512 -------------------------------------------------------------------------------
LK_AVX512 float lk_dot_q4k_avx512(const void *vw, const void *vx, int64_t n) {
  const block_q4_K *w = vw;
  const block_q8_K *x = vx;
  __m512 acc = _mm512_setzero_ps();
  float mins = 0;
  for (int64_t b = 0; b < n / QK_K; b++) {
    _Alignas(16) uint8_t sc[16], m[8];
    q4k_scales(w[b].scales, sc, m);
    __m128i scv = _mm_loadl_epi64((const __m128i *)sc);
    __m512i isum = _mm512_setzero_si512();
    for (int c = 0; c < 4; c++) {
      __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c)));
      q = _mm512_and_si512(_mm512_srlv_epi64(q, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)), _mm512_set1_epi8(0x0F));
      __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_loadu_si512(x[b].qs + 64 * c));
      __m128i pat = _mm_setr_epi8(2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c + 1, 2 * c + 1, 2 * c + 1,
                                  2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1);
      isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(dot, _mm512_cvtepu8_epi32(_mm_shuffle_epi8(scv, pat))));
    }
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(x[b].d * lk_h2f(w[b].d)), acc);
    mins += x[b].d * lk_h2f(w[b].dmin) * (float)q4k_minsum(m, x[b].bsums);
  }
  return _mm512_reduce_add_ps(acc) - mins;
}

LK_AVX512 float lk_dot_q6k_avx512(const void *vw, const void *vx, int64_t n) {
  const block_q6_K *w = vw;
  const block_q8_K *x = vx;
  __m512 acc = _mm512_setzero_ps();
  const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(3);
  for (int64_t b = 0; b < n / QK_K; b++) {
    __m128i sc = _mm_loadu_si128((const __m128i *)w[b].scales);
    __m512i isum = _mm512_setzero_si512();
    for (int h = 0; h < 2; h++) {
      __m512i ql = _mm512_loadu_si512(w[b].ql + 64 * h);
      __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h)));
      __m512i h0 = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2)), m3);
      __m512i h1 = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 6, 6, 6, 6)), m3);
      __m512i q0 = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(h0, 4));  // elements 0..63
      __m512i q1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_slli_epi16(h1, 4));  // 64..127
      __m512i d0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q0, _mm512_loadu_si512(x[b].qs + 128 * h));
      __m512i d1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q1, _mm512_loadu_si512(x[b].qs + 128 * h + 64));
      // group g (16 elements) covers 4 lanes: scale vectors [s_g × 4, s_g+1 × 4, ...]
      int g0 = 8 * h;
      __m128i p0 = _mm_setr_epi8(g0, g0, g0, g0, g0 + 1, g0 + 1, g0 + 1, g0 + 1, g0 + 2, g0 + 2, g0 + 2, g0 + 2, g0 + 3,
                                 g0 + 3, g0 + 3, g0 + 3);
      __m128i p1 = _mm_add_epi8(p0, _mm_set1_epi8(4));
      isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(d0, _mm512_cvtepi8_epi32(_mm_shuffle_epi8(sc, p0))));
      isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(d1, _mm512_cvtepi8_epi32(_mm_shuffle_epi8(sc, p1))));
    }
    __m512i bias = _mm512_mullo_epi32(_mm512_cvtepi8_epi32(sc),
                                      _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)x[b].bsums)));
    isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(bias, 5));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(x[b].d * lk_h2f(w[b].d)), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// ---- AVX2 ----------------------------------------------------------------------------------
LK_AVX2 LK_INLINE float hsum8k(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LK_AVX2 float lk_dot_q4k_avx2(const void *vw, const void *vx, int64_t n) {
  const block_q4_K *w = vw;
  const block_q8_K *x = vx;
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < n / QK_K; b++) {
    uint8_t sc[8], m[8];
    q4k_scales(w[b].scales, sc, m);
    __m256i isum = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
      __m256i q = _mm256_loadu_si256((const __m256i *)(w[b].qs + 32 * c));
      __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
      __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * c)));
      __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(x[b].qs + 64 * c + 32)));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(plo, _mm256_set1_epi16(sc[2 * c])));
      isum = _mm256_add_epi32(isum, _mm256_madd_epi16(phi, _mm256_set1_epi16(sc[2 * c + 1])));
    }
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(x[b].d * _cvtsh_ss(w[b].d)), acc);
    mins += x[b].d * _cvtsh_ss(w[b].dmin) * (float)q4k_minsum(m, x[b].bsums);
  }
  return hsum8k(acc) - mins;
}

LK_AVX2 float lk_dot_q6k_avx2(const void *vw, const void *vx, int64_t n) {
  const block_q6_K *w = vw;
  const block_q8_K *x = vx;
  __m256 acc = _mm256_setzero_ps();
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
  for (int64_t b = 0; b < n / QK_K; b++) {
    __m128i sc = _mm_loadu_si128((const __m128i *)w[b].scales);
    __m256i isum = _mm256_setzero_si256();
    for (int h = 0; h < 2; h++) {
      __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h));
      __m256i ql1 = _mm256_loadu_si256((const __m256i *)(w[b].ql + 64 * h + 32));
      __m256i qh = _mm256_loadu_si256((const __m256i *)(w[b].qh + 32 * h));
      __m256i q[4] = {
          _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4)),
          _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4)),
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4))};
      for (int k = 0; k < 4; k++) {
        int g = 8 * h + 2 * k;  // the two 16-element groups of this 32-element slice
        __m256i p = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(x[b].qs + 128 * h + 32 * k)));
        __m256i s16 = _mm256_setr_m128i(_mm_set1_epi16(w[b].scales[g]), _mm_set1_epi16(w[b].scales[g + 1]));
        isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, s16));
      }
    }
    __m256i bias = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc), _mm256_loadu_si256((const __m256i *)x[b].bsums));
    isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(bias, 5));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(x[b].d * _cvtsh_ss(w[b].d)), acc);
  }
  return hsum8k(acc);
}

#endif
