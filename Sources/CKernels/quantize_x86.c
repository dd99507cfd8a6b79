// AVX2 / AVX-512 activation quantization to Q8_0 and Q8_1. Same arithmetic as the scalar
// quantizers (amax / 127, x * (1 / d), round half away from zero), so the bytes are identical.
#include "internal.h"

#if LK_X86

#pragma clang fp contract(off)

// ---- AVX-512 -------------------------------------------------------------------------------
/// roundf semantics: truncate, then step away from zero when the dropped part is >= 0.5.
LK_AVX512 LK_INLINE __m512i round_away512(__m512 v) {
  __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(v, t);
  t = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(f, _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, _mm512_set1_ps(1.0f));
  t = _mm512_mask_sub_ps(t, _mm512_cmp_ps_mask(f, _mm512_set1_ps(-0.5f), _CMP_LE_OQ), t, _mm512_set1_ps(1.0f));
  return _mm512_cvttps_epi32(t);
}

LK_AVX512 void lk_quant_act_avx512(int atype, const float *x, void *xq, int64_t n) {
  if (atype != LK_Q8_0 && atype != LK_Q8_1) {
    lk_quant_act_scalar(atype, x, xq, n);
    return;
  }
  int64_t nb = n / QK, bs = atype == LK_Q8_0 ? 34 : 36, off = atype == LK_Q8_0 ? 2 : 4;
  const __m512 sign = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < nb; i++, x += QK) {
    uint8_t *b = (uint8_t *)xq + i * bs;
    __m512 a = _mm512_loadu_ps(x), c = _mm512_loadu_ps(x + 16);
    float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_and_ps(a, sign), _mm512_and_ps(c, sign)));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    __m512 vid = _mm512_set1_ps(id);
    __m512i qa = round_away512(_mm512_mul_ps(a, vid)), qc = round_away512(_mm512_mul_ps(c, vid));
    _mm_storeu_si128((__m128i *)(b + off), _mm512_cvtsepi32_epi8(qa));
    _mm_storeu_si128((__m128i *)(b + off + 16), _mm512_cvtsepi32_epi8(qc));
    // F16C's conversion rounds to nearest even as lk_f2h does (NaN payloads aside)
    uint16_t dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    memcpy(b, &dh, 2);
    if (atype == LK_Q8_1) {
      int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(qa, qc));
      uint16_t sh = _cvtss_sh(d * (float)sum, _MM_FROUND_TO_NEAREST_INT);
      memcpy(b + 2, &sh, 2);
    }
  }
}

// ---- AVX2 ----------------------------------------------------------------------------------
LK_AVX2 LK_INLINE __m256i round_away256(__m256 v) {
  __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_sub_ps(v, t), one = _mm256_set1_ps(1.0f);
  t = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(f, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
  t = _mm256_sub_ps(t, _mm256_and_ps(_mm256_cmp_ps(f, _mm256_set1_ps(-0.5f), _CMP_LE_OQ), one));
  return _mm256_cvttps_epi32(t);
}

LK_AVX2 void lk_quant_act_avx2(int atype, const float *x, void *xq, int64_t n) {
  if (atype != LK_Q8_0 && atype != LK_Q8_1) {
    lk_quant_act_scalar(atype, x, xq, n);
    return;
  }
  int64_t nb = n / QK, bs = atype == LK_Q8_0 ? 34 : 36, off = atype == LK_Q8_0 ? 2 : 4;
  const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  for (int64_t i = 0; i < nb; i++, x += QK) {
    uint8_t *b = (uint8_t *)xq + i * bs;
    __m256 v[4];
    __m256 m = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      m = _mm256_max_ps(m, _mm256_and_ps(v[k], sign));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = round_away256(_mm256_mul_ps(v[k], vid));
    // pack 32 x i32 -> 32 x i8 (packs work per 128-bit lane; fix the order with a permute)
    __m256i p01 = _mm256_packs_epi32(q[0], q[1]), p23 = _mm256_packs_epi32(q[2], q[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(b + off), p);
    uint16_t dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    memcpy(b, &dh, 2);
    if (atype == LK_Q8_1) {
      __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
      uint16_t sh = _cvtss_sh(d * (float)_mm_cvtsi128_si32(s4), _MM_FROUND_TO_NEAREST_INT);
      memcpy(b + 2, &sh, 2);
    }
  }
}

#endif
