// AVX2 products of Q4_0 / Q4_1 / Q8_0 weights with Q8_0 / Q8_1 activations, one 32-element
// block per 256-bit vector: vpmaddubsw + vpmaddwd for the block dot, then one FMA with the
// block's scale. Q4 nibbles stay unsigned with the same per-block corrections as the AVX-512
// path (see dot_q32_avx512.c); Q8_0 uses |w| · sign(x, w).
#include "internal.h"

#if LK_X86

enum { KCV = 256 };         // matvec: activation blocks prepared at once
enum { KCM = 64, TT = 8 };  // matmul: blocks per column chunk, tokens prepared at once

LK_INLINE int wbytes(int wtype) { return wtype == LK_Q4_0 ? 18 : wtype == LK_Q4_1 ? 20 : 34; }

/// Activation blocks [kb0, kb0 + nkb) copied to qs (32-byte aligned), with scales and corrections.
LK_AVX2 LK_INLINE void prep_x(int wtype, const uint8_t *xrow, int64_t kb0, int nkb, int8_t *qs, float *dx,
                              float *cx) {
  const int xbs = wtype == LK_Q4_1 ? 36 : 34, xoff = xbs - 32;
  const float k = wtype == LK_Q4_0 ? -8.0f : wtype == LK_Q4_1 ? 1.0f : 0.0f;
  const __m256i ones8 = _mm256_set1_epi8(1);
  const __m256i ones16 = _mm256_set1_epi16(1);
  for (int b = 0; b < nkb; b++) {
    const uint8_t *p = xrow + (kb0 + b) * xbs;
    __m256i v = _mm256_loadu_si256((const __m256i *)(p + xoff));
    _mm256_store_si256((__m256i *)(qs + 32 * b), v);
    __m256i s8 = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, v), ones16);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    uint16_t dh;
    memcpy(&dh, p, 2);
    float d = _cvtsh_ss(dh);
    dx[b] = d;
    cx[b] = k * d * (float)_mm_cvtsi128_si32(s4);
  }
  for (int b = nkb; b < ((nkb + 7) & ~7); b++) dx[b] = cx[b] = 0;
}

/// One weight block as 32 bytes for vpmaddubsw: nibbles (unsigned) or |w| for Q8_0.
LK_AVX2 LK_INLINE __m256i unpack1(int wtype, const uint8_t *w) {
  if (wtype == LK_Q8_0) return _mm256_loadu_si256((const __m256i *)(w + 2));
  __m128i q = _mm_loadu_si128((const __m128i *)(w + wbytes(wtype) - 16));
  __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/// i32 partial sums (8 lanes) of one block dot.
LK_AVX2 LK_INLINE __m256i block_dot(int wtype, __m256i w, __m256i x) {
  const __m256i ones16 = _mm256_set1_epi16(1);
  if (wtype == LK_Q8_0) return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w)), ones16);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), ones16);
}

/// dw and cw of up to 8 consecutive blocks starting at w (n valid).
LK_AVX2 LK_INLINE void gather_scales(int wtype, const uint8_t *w, int n, __m256 *dw, __m256 *cw) {
  const __m256i idx = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(wbytes(wtype)));
  __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256i raw = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)w, idx, mask, 1);
  __m256i lo = _mm256_and_si256(raw, _mm256_set1_epi32(0xFFFF));
  *dw = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1)));
  if (wtype == LK_Q4_1) {
    __m256i hi = _mm256_srli_epi32(raw, 16);
    *cw = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1)));
  } else {
    *cw = *dw;
  }
}

LK_AVX2 LK_INLINE float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---- matvec ----------------------------------------------------------------------------------
typedef struct {
  _Alignas(32) int8_t qs[KCV * 32];  // (nkb, 32)
  _Alignas(32) float dx[KCV + 8];    // (nkb) zero padded to 8
  _Alignas(32) float cx[KCV + 8];    // (nkb)
} xprep_v;

LK_AVX2 LK_INLINE void mv_tile(int wtype, int NR, const uint8_t *w0, int64_t rb, const xprep_v *xp, int nkb,
                               float *out) {
  const int bs = wbytes(wtype);
  __m256 acc[4];
  for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps();
  for (int g = 0; g < nkb; g += 8) {
    int n = nkb - g < 8 ? nkb - g : 8;
    __m256 dx8 = _mm256_load_ps(xp->dx + g), cx8 = _mm256_load_ps(xp->cx + g);
    __m256 dd[4];
    for (int r = 0; r < NR; r++) {
      __m256 dw, cw;
      gather_scales(wtype, w0 + r * rb + g * bs, n, &dw, &cw);
      if (wtype != LK_Q8_0) acc[r] = _mm256_fmadd_ps(cw, cx8, acc[r]);
      dd[r] = _mm256_mul_ps(dw, dx8);
    }
    for (int b = 0; b < n; b++) {
      __m256i x = _mm256_load_si256((const __m256i *)(xp->qs + 32 * (g + b)));
      __m256i bi = _mm256_set1_epi32(b);
      for (int r = 0; r < NR; r++) {
        __m256i dot = block_dot(wtype, unpack1(wtype, w0 + r * rb + (g + b) * bs), x);
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), _mm256_permutevar8x32_ps(dd[r], bi), acc[r]);
      }
    }
  }
  for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]);
}

#define MV_INST(T)                                                                                          \
  static LK_AVX2 __attribute__((noinline)) void mv4_##T(const uint8_t *w0, int64_t rb, const xprep_v *xp,   \
                                                        int nkb, float *out) {                              \
    mv_tile(LK_##T, 4, w0, rb, xp, nkb, out);                                                               \
  }                                                                                                         \
  static LK_AVX2 __attribute__((noinline)) void mv1_##T(const uint8_t *w0, int64_t rb, const xprep_v *xp,   \
                                                        int nkb, float *out) {                              \
    mv_tile(LK_##T, 1, w0, rb, xp, nkb, out);                                                               \
  }
MV_INST(Q4_0)
MV_INST(Q4_1)
MV_INST(Q8_0)

typedef void (*mv_tile_fn)(const uint8_t *, int64_t, const xprep_v *, int, float *);

LK_AVX2 void lk_mv_q32_avx2(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0,
                            int64_t r1) {
  mv_tile_fn f4 = wtype == LK_Q4_0 ? mv4_Q4_0 : wtype == LK_Q4_1 ? mv4_Q4_1 : mv4_Q8_0;
  mv_tile_fn f1 = wtype == LK_Q4_0 ? mv1_Q4_0 : wtype == LK_Q4_1 ? mv1_Q4_1 : mv1_Q8_0;
  const int bs = wbytes(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs;
  xprep_v xp;
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KCV) {
    int nkb = (int)(nb - kb0 < KCV ? nb - kb0 : KCV);
    prep_x(wtype, xq, kb0, nkb, xp.qs, xp.dx, xp.cx);
    const uint8_t *wc = (const uint8_t *)W + kb0 * bs;
    float out[4];
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
      f4(wc + r * rb, rb, &xp, nkb, out);
      for (int i = 0; i < 4; i++) y[r - r0 + i] = kb0 ? y[r - r0 + i] + out[i] : out[i];
    }
    for (; r < r1; r++) {
      f1(wc + r * rb, rb, &xp, nkb, out);
      y[r - r0] = kb0 ? y[r - r0] + out[0] : out[0];
    }
  }
}

// ---- matmul ----------------------------------------------------------------------------------
typedef struct {
  _Alignas(32) int8_t qs[TT][KCM * 32];  // (token, nkb, 32)
  _Alignas(32) float dx[TT][KCM + 8];    // (token, nkb)
  _Alignas(32) float cx[TT][KCM + 8];    // (token, nkb)
} xprep_m;

typedef struct {
  _Alignas(32) float dw[4][KCM + 8];  // (row, nkb)
  _Alignas(32) float cw[4][KCM + 8];  // (row, nkb)
} wprep_m;

LK_AVX2 LK_INLINE void prep_w(int wtype, int NR, const uint8_t *w0, int64_t rb, int nkb, wprep_m *wp) {
  const int bs = wbytes(wtype);
  for (int r = 0; r < NR; r++)
    for (int g = 0; g < nkb; g += 8) {
      __m256 dw, cw;
      gather_scales(wtype, w0 + r * rb + g * bs, nkb - g < 8 ? nkb - g : 8, &dw, &cw);
      _mm256_store_ps(wp->dw[r] + g, dw);
      _mm256_store_ps(wp->cw[r] + g, cw);
    }
}

/// NR rows × NT tokens (NT <= 2) over one chunk: out[t * 4 + r].
LK_AVX2 LK_INLINE void mm_tile(int wtype, int NR, int NT, const uint8_t *w0, int64_t rb, const wprep_m *wp,
                               const xprep_m *xp, int t0, int nkb, float *out) {
  const int bs = wbytes(wtype);
  __m256 acc[4][2];
  for (int r = 0; r < NR; r++)
    for (int t = 0; t < NT; t++) acc[r][t] = _mm256_setzero_ps();
  if (wtype != LK_Q8_0)
    for (int g = 0; g < nkb; g += 8)
      for (int r = 0; r < NR; r++) {
        __m256 cw = _mm256_load_ps(wp->cw[r] + g);
        for (int t = 0; t < NT; t++) acc[r][t] = _mm256_fmadd_ps(cw, _mm256_load_ps(xp->cx[t0 + t] + g), acc[r][t]);
      }
  for (int b = 0; b < nkb; b++) {
    __m256i wv[4];
    for (int r = 0; r < NR; r++) wv[r] = unpack1(wtype, w0 + r * rb + b * bs);
    for (int t = 0; t < NT; t++) {
      __m256i x = _mm256_load_si256((const __m256i *)(xp->qs[t0 + t] + 32 * b));
      __m256 u = _mm256_broadcast_ss(xp->dx[t0 + t] + b);
      for (int r = 0; r < NR; r++) {
        __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(block_dot(wtype, wv[r], x)), _mm256_broadcast_ss(wp->dw[r] + b));
        acc[r][t] = _mm256_fmadd_ps(f, u, acc[r][t]);
      }
    }
  }
  for (int t = 0; t < NT; t++)
    for (int r = 0; r < NR; r++) out[4 * t + r] = hsum8(acc[r][t]);
}

#define MM_INST(T, NR, NT)                                                                                  \
  static LK_AVX2 __attribute__((noinline)) void mm_##T##_##NR##_##NT(                                       \
      const uint8_t *w0, int64_t rb, const wprep_m *wp, const xprep_m *xp, int t0, int nkb, float *out) {   \
    mm_tile(LK_##T, NR, NT, w0, rb, wp, xp, t0, nkb, out);                                                  \
  }
#define MM_INST_T(T) MM_INST(T, 4, 2) MM_INST(T, 4, 1) MM_INST(T, 1, 2) MM_INST(T, 1, 1)
MM_INST_T(Q4_0)
MM_INST_T(Q4_1)
MM_INST_T(Q8_0)

typedef void (*mm_tile_fn)(const uint8_t *, int64_t, const wprep_m *, const xprep_m *, int, int, float *);

static LK_AVX2 __attribute__((noinline)) void prep_wn(int wtype, int nr, const uint8_t *w0, int64_t rb, int nkb,
                                                      wprep_m *wp) {
  if (wtype == LK_Q4_1) prep_w(LK_Q4_1, nr, w0, rb, nkb, wp);
  else if (wtype == LK_Q4_0) prep_w(LK_Q4_0, nr, w0, rb, nkb, wp);
  else prep_w(LK_Q8_0, nr, w0, rb, nkb, wp);
}

LK_AVX2 void lk_mm_q32_avx2(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride,
                            int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  mm_tile_fn f42, f41, f12, f11;
  if (wtype == LK_Q4_0) f42 = mm_Q4_0_4_2, f41 = mm_Q4_0_4_1, f12 = mm_Q4_0_1_2, f11 = mm_Q4_0_1_1;
  else if (wtype == LK_Q4_1) f42 = mm_Q4_1_4_2, f41 = mm_Q4_1_4_1, f12 = mm_Q4_1_1_2, f11 = mm_Q4_1_1_1;
  else f42 = mm_Q8_0_4_2, f41 = mm_Q8_0_4_1, f12 = mm_Q8_0_1_2, f11 = mm_Q8_0_1_1;
  const int bs = wbytes(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs;
  xprep_m xp;
  wprep_m wp;
  float out[8];
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KCM) {
    int nkb = (int)(nb - kb0 < KCM ? nb - kb0 : KCM);
    const uint8_t *wc = (const uint8_t *)W + kb0 * bs;
    for (int64_t tb = 0; tb < ntok; tb += TT) {
      int tt = (int)(ntok - tb < TT ? ntok - tb : TT);
      for (int t = 0; t < tt; t++)
        prep_x(wtype, (const uint8_t *)Xq + (tb + t) * xstride, kb0, nkb, xp.qs[t], xp.dx[t], xp.cx[t]);
      for (int64_t r = r0; r < r1;) {
        int nr = r1 - r >= 4 ? 4 : 1;
        prep_wn(wtype, nr, wc + r * rb, rb, nkb, &wp);
        for (int t = 0; t < tt;) {
          int nt = tt - t >= 2 ? 2 : 1;
          mm_tile_fn f = nr == 4 ? (nt == 2 ? f42 : f41) : (nt == 2 ? f12 : f11);
          f(wc + r * rb, rb, &wp, &xp, t, nkb, out);
          for (int j = 0; j < nt; j++)
            for (int i = 0; i < nr; i++) {
              float *yp = Y + (tb + t + j) * ldy + r + i;
              *yp = kb0 ? *yp + out[4 * j + i] : out[4 * j + i];
            }
          t += nt;
        }
        r += nr;
      }
    }
  }
}

#endif
