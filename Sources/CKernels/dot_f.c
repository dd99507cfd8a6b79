// Float weights (F32, F16, BF16) times f32 activations: AVX2 and AVX-512 matvec (4 rows share
// each activation load) and matmul (4 rows x 4 tokens, or 4 x 2 with AVX2, of FMA accumulators).
#include "internal.h"

#if LK_X86

#define PF_BYTES 8192  // matvec: prefetch distance (see dot_q32_avx512.c)

// ---- AVX-512 -------------------------------------------------------------------------------
/// 16 weights from column c of a row (masked: only lanes in m are loaded).
LK_AVX512 LK_INLINE __m512 wload16(int wtype, const void *row, int64_t c, __mmask16 m) {
  if (wtype == LK_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + c);
  __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + c);
  if (wtype == LK_F16) return _mm512_cvtph_ps(h);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

LK_AVX512 LK_INLINE void mvf_tile(int wtype, int NR, const char *w0, int64_t rb, const float *x, int64_t n,
                                  float *out) {
  __m512 acc[4];
  for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t c = 0; c < n; c += 16) {
    __mmask16 m = n - c >= 16 ? 0xFFFF : (__mmask16)((1u << (n - c)) - 1);
    __m512 xv = _mm512_maskz_loadu_ps(m, x + c);
    for (int r = 0; r < NR; r++) acc[r] = _mm512_fmadd_ps(wload16(wtype, w0 + r * rb, c, m), xv, acc[r]);
  }
  for (int r = 0; r < NR; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}

#define MVF_INST(T, NR)                                                                                       \
  static LK_AVX512 __attribute__((noinline)) void mvf512_##T##_##NR(const char *w0, int64_t rb, const float *x, \
                                                                    int64_t n, float *out) {                  \
    mvf_tile(LK_##T, NR, w0, rb, x, n, out);                                                                  \
  }
MVF_INST(F32, 4) MVF_INST(F32, 1) MVF_INST(F16, 4) MVF_INST(F16, 1) MVF_INST(BF16, 4) MVF_INST(BF16, 1)

/// Prefetches (into L2) the bytes of rows [r, r + 4) shifted PF_BYTES ahead, within [.., end).
LK_INLINE void prefetch_ahead(const char *W, int64_t rb, int64_t r, const char *end) {
  const char *p = W + r * rb + PF_BYTES;
  for (int64_t o = 0; o < 4 * rb && p + o < end; o += 64) _mm_prefetch(p + o, _MM_HINT_T1);
}

LK_AVX512 void lk_mv_f_avx512(int wtype, float *y, const void *W, const float *x, int64_t ncols, int64_t r0,
                              int64_t r1) {
  void (*f4)(const char *, int64_t, const float *, int64_t, float *) =
      wtype == LK_F32 ? mvf512_F32_4 : wtype == LK_F16 ? mvf512_F16_4 : mvf512_BF16_4;
  void (*f1)(const char *, int64_t, const float *, int64_t, float *) =
      wtype == LK_F32 ? mvf512_F32_1 : wtype == LK_F16 ? mvf512_F16_1 : mvf512_BF16_1;
  int64_t rb = lk_row_bytes(wtype, ncols), r = r0;
  const char *end = (const char *)W + r1 * rb;
  for (; r + 4 <= r1; r += 4) {
    prefetch_ahead(W, rb, r, end);
    f4((const char *)W + r * rb, rb, x, ncols, y + (r - r0));
  }
  for (; r < r1; r++) f1((const char *)W + r * rb, rb, x, ncols, y + (r - r0));
}

LK_AVX512 LK_INLINE void mmf_tile(int wtype, int NR, int NT, const char *w0, int64_t rb, const float *x0,
                                  int64_t xs, int64_t n, float *Y, int64_t ldy) {
  __m512 acc[4][4];
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_ps();
  for (int64_t c = 0; c < n; c += 16) {
    __mmask16 m = n - c >= 16 ? 0xFFFF : (__mmask16)((1u << (n - c)) - 1);
    __m512 wv[4];
    for (int r = 0; r < NR; r++) wv[r] = wload16(wtype, w0 + r * rb, c, m);
    for (int t = 0; t < NT; t++) {
      __m512 xv = _mm512_maskz_loadu_ps(m, x0 + t * xs + c);
      for (int r = 0; r < NR; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int t = 0; t < NT; t++)
    for (int r = 0; r < NR; r++) Y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

#define MMF_INST(T, NR, NT)                                                                                    \
  static LK_AVX512 __attribute__((noinline)) void mmf512_##T##_##NR##_##NT(                                    \
      const char *w0, int64_t rb, const float *x0, int64_t xs, int64_t n, float *Y, int64_t ldy) {             \
    mmf_tile(LK_##T, NR, NT, w0, rb, x0, xs, n, Y, ldy);                                                       \
  }
#define MMF_INST_T(T) MMF_INST(T, 4, 4) MMF_INST(T, 4, 1) MMF_INST(T, 1, 4) MMF_INST(T, 1, 1)
MMF_INST_T(F32)
MMF_INST_T(F16)
MMF_INST_T(BF16)

typedef void (*mmf_fn)(const char *, int64_t, const float *, int64_t, int64_t, float *, int64_t);

LK_AVX512 void lk_mm_f_avx512(int wtype, float *Y, int64_t ldy, const void *W, const float *X, int64_t xstride,
                              int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  mmf_fn f[2][2];  // [rows == 4][tokens == 4]
  if (wtype == LK_F32) f[1][1] = mmf512_F32_4_4, f[1][0] = mmf512_F32_4_1, f[0][1] = mmf512_F32_1_4, f[0][0] = mmf512_F32_1_1;
  else if (wtype == LK_F16) f[1][1] = mmf512_F16_4_4, f[1][0] = mmf512_F16_4_1, f[0][1] = mmf512_F16_1_4, f[0][0] = mmf512_F16_1_1;
  else f[1][1] = mmf512_BF16_4_4, f[1][0] = mmf512_BF16_4_1, f[0][1] = mmf512_BF16_1_4, f[0][0] = mmf512_BF16_1_1;
  int64_t rb = lk_row_bytes(wtype, ncols), xs = xstride / 4;
  // Tokens in blocks of 64 so the weight rows of a row tile are reused from L1/L2.
  for (int64_t tb = 0; tb < ntok; tb += 64) {
    int64_t te = tb + 64 < ntok ? tb + 64 : ntok;
    for (int64_t r = r0; r < r1;) {
      int nr = r1 - r >= 4 ? 4 : 1;
      for (int64_t t = tb; t < te;) {
        int nt = te - t >= 4 ? 4 : 1;
        f[nr == 4][nt == 4]((const char *)W + r * rb, rb, X + t * xs, xs, ncols, Y + t * ldy + r, ldy);
        t += nt;
      }
      r += nr;
    }
  }
}

// ---- AVX2 ----------------------------------------------------------------------------------
/// 8 weights from column c of a row (c + 8 <= n).
LK_AVX2 LK_INLINE __m256 wload8(int wtype, const void *row, int64_t c) {
  if (wtype == LK_F32) return _mm256_loadu_ps((const float *)row + c);
  __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + c));
  if (wtype == LK_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

LK_INLINE float wscalar(int wtype, const void *row, int64_t c) {
  if (wtype == LK_F32) return ((const float *)row)[c];
  uint16_t h = ((const uint16_t *)row)[c];
  return wtype == LK_F16 ? lk_h2f(h) : lk_bf2f(h);
}

LK_AVX2 LK_INLINE float hsum8f(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LK_AVX2 LK_INLINE void mvf2_tile(int wtype, int NR, const char *w0, int64_t rb, const float *x, int64_t n,
                                 float *out) {
  __m256 acc[4];
  for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    __m256 xv = _mm256_loadu_ps(x + c);
    for (int r = 0; r < NR; r++) acc[r] = _mm256_fmadd_ps(wload8(wtype, w0 + r * rb, c), xv, acc[r]);
  }
  for (int r = 0; r < NR; r++) {
    float s = hsum8f(acc[r]);
    for (int64_t k = c; k < n; k++) s += wscalar(wtype, w0 + r * rb, k) * x[k];
    out[r] = s;
  }
}

#define MVF2_INST(T, NR)                                                                                    \
  static LK_AVX2 __attribute__((noinline)) void mvf2_##T##_##NR(const char *w0, int64_t rb, const float *x,  \
                                                                int64_t n, float *out) {                    \
    mvf2_tile(LK_##T, NR, w0, rb, x, n, out);                                                               \
  }
MVF2_INST(F32, 4) MVF2_INST(F32, 1) MVF2_INST(F16, 4) MVF2_INST(F16, 1) MVF2_INST(BF16, 4) MVF2_INST(BF16, 1)

LK_AVX2 void lk_mv_f_avx2(int wtype, float *y, const void *W, const float *x, int64_t ncols, int64_t r0,
                          int64_t r1) {
  void (*f4)(const char *, int64_t, const float *, int64_t, float *) =
      wtype == LK_F32 ? mvf2_F32_4 : wtype == LK_F16 ? mvf2_F16_4 : mvf2_BF16_4;
  void (*f1)(const char *, int64_t, const float *, int64_t, float *) =
      wtype == LK_F32 ? mvf2_F32_1 : wtype == LK_F16 ? mvf2_F16_1 : mvf2_BF16_1;
  int64_t rb = lk_row_bytes(wtype, ncols), r = r0;
  const char *end = (const char *)W + r1 * rb;
  for (; r + 4 <= r1; r += 4) {
    prefetch_ahead(W, rb, r, end);
    f4((const char *)W + r * rb, rb, x, ncols, y + (r - r0));
  }
  for (; r < r1; r++) f1((const char *)W + r * rb, rb, x, ncols, y + (r - r0));
}

LK_AVX2 LK_INLINE void mmf2_tile(int wtype, int NR, int NT, const char *w0, int64_t rb, const float *x0,
                                 int64_t xs, int64_t n, float *Y, int64_t ldy) {
  __m256 acc[4][2];
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    __m256 wv[4];
    for (int r = 0; r < NR; r++) wv[r] = wload8(wtype, w0 + r * rb, c);
    for (int t = 0; t < NT; t++) {
      __m256 xv = _mm256_loadu_ps(x0 + t * xs + c);
      for (int r = 0; r < NR; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int t = 0; t < NT; t++)
    for (int r = 0; r < NR; r++) {
      float s = hsum8f(acc[r][t]);
      for (int64_t k = c; k < n; k++) s += wscalar(wtype, w0 + r * rb, k) * x0[t * xs + k];
      Y[t * ldy + r] = s;
    }
}

#define MMF2_INST(T, NR, NT)                                                                                 \
  static LK_AVX2 __attribute__((noinline)) void mmf2_##T##_##NR##_##NT(                                      \
      const char *w0, int64_t rb, const float *x0, int64_t xs, int64_t n, float *Y, int64_t ldy) {           \
    mmf2_tile(LK_##T, NR, NT, w0, rb, x0, xs, n, Y, ldy);                                                    \
  }
#define MMF2_INST_T(T) MMF2_INST(T, 4, 2) MMF2_INST(T, 4, 1) MMF2_INST(T, 1, 2) MMF2_INST(T, 1, 1)
MMF2_INST_T(F32)
MMF2_INST_T(F16)
MMF2_INST_T(BF16)

LK_AVX2 void lk_mm_f_avx2(int wtype, float *Y, int64_t ldy, const void *W, const float *X, int64_t xstride,
                          int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  mmf_fn f[2][2];  // [rows == 4][tokens == 2]
  if (wtype == LK_F32) f[1][1] = mmf2_F32_4_2, f[1][0] = mmf2_F32_4_1, f[0][1] = mmf2_F32_1_2, f[0][0] = mmf2_F32_1_1;
  else if (wtype == LK_F16) f[1][1] = mmf2_F16_4_2, f[1][0] = mmf2_F16_4_1, f[0][1] = mmf2_F16_1_2, f[0][0] = mmf2_F16_1_1;
  else f[1][1] = mmf2_BF16_4_2, f[1][0] = mmf2_BF16_4_1, f[0][1] = mmf2_BF16_1_2, f[0][0] = mmf2_BF16_1_1;
  int64_t rb = lk_row_bytes(wtype, ncols), xs = xstride / 4;
  for (int64_t tb = 0; tb < ntok; tb += 64) {
    int64_t te = tb + 64 < ntok ? tb + 64 : ntok;
    for (int64_t r = r0; r < r1;) {
      int nr = r1 - r >= 4 ? 4 : 1;
      for (int64_t t = tb; t < te;) {
        int nt = te - t >= 2 ? 2 : 1;
        f[nr == 4][nt == 2]((const char *)W + r * rb, rb, X + t * xs, xs, ncols, Y + t * ldy + r, ldy);
        t += nt;
      }
      r += nr;
    }
  }
}

#endif
