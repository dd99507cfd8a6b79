// AVX-512 VNNI matmul of Q4_0 / Q4_1 / Q8_0 weights (several activation rows): each 16-row
// tile transposed once into L1, token groups over it; see q32_avx512.h for the layouts and the
// float order it shares with the matvec.
#include "q32_avx512.h"

#if LK_X86

/// Transposes blocks [0, nkb) of the 16 rows into pk (8 vectors per block) and their scales
/// into dws / cws (16 floats per block).
LK_AVX512 LK_INLINE void pack_tile(int wtype, const uint8_t *const w[16], int nkb, __m512i *pk, float *dws,
                                   float *cws, const uint8_t *pf, const uint8_t *pfend) {
  lk_pfspread pfs = pf_spread(wtype, pf, pfend, nkb);
  for (int b4 = 0; b4 < nkb; b4 += 4) {
    int nb = nkb - b4 < 4 ? nkb - b4 : 4;
    __m512 dw[4], cw[4];
    scales16(wtype, w, b4, nb, dw, cw);
    for (int k = 0; k < nb; k++) {
      pf_step(wtype, &pfs);
      _mm512_store_ps(dws + 16 * (b4 + k), dw[k]);
      if (wtype == LK_Q4_1) _mm512_store_ps(cws + 16 * (b4 + k), cw[k]);
      tile16(wtype, w, b4 + k, pk + 8 * (b4 + k));
    }
  }
}

#define PACK_INST(T)                                                                                           \
  static LK_AVX512 __attribute__((noinline)) void pack_##T(const uint8_t *const w[16], int nkb, __m512i *pk,   \
                                                           float *dws, float *cws, const uint8_t *pf,          \
                                                           const uint8_t *pfend) {                             \
    pack_tile(LK_##T, w, nkb, pk, dws, cws, pf, pfend);                                                        \
  }
PACK_INST(Q4_0)
PACK_INST(Q4_1)
PACK_INST(Q8_0)

/// The packed tile · NT tokens: acc[t] = the chunk's results of token t (rows in lanes).
/// xr[t]: token t's activation row at the chunk; dx / c: its coefficients, ldc apart per token.
LK_AVX512 LK_INLINE void mm_tile(int wtype, int NT, const __m512i *pk, const float *dws, const float *cws,
                                 const uint8_t *const *xr, const float *dx, const xcorr *c, int ldc, int nkb,
                                 __m512 *acc) {
  const int xbs = xbytes(wtype), xoff = xqs_off(wtype);
  for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
  for (int b = 0; b < nkb; b++) {
    __m512i id[NT];
    for (int t = 0; t < NT; t++) id[t] = _mm512_setzero_si512();
    for (int k = 0; k < 8; k++) {
      __m512i v = _mm512_load_si512(pk + 8 * b + k);
      for (int t = 0; t < NT; t++) id[t] = _mm512_dpbusd_epi32(id[t], v, bcast4(xr[t] + b * xbs + xoff + xpair_off(k)));
    }
    __m512 dw = _mm512_load_ps(dws + 16 * b), cw = wtype == LK_Q4_1 ? _mm512_load_ps(cws + 16 * b) : dw;
    for (int t = 0; t < NT; t++) acc[t] = block_step(wtype, acc[t], id[t], dw, cw, dx + t * ldc + b, c + t * ldc + b);
  }
}

#define MM_INST(T, NT)                                                                                         \
  static LK_AVX512 __attribute__((noinline)) void mm_##T##_##NT(                                               \
      const __m512i *pk, const float *dws, const float *cws, const uint8_t *const *xr, const float *dx,        \
      const xcorr *c, int ldc, int nkb, float *Y, int64_t ldy, int nr, int first) {                            \
    __m512 acc[NT];                                                                                            \
    mm_tile(LK_##T, NT, pk, dws, cws, xr, dx, c, ldc, nkb, acc);                                               \
    for (int t = 0; t < NT; t++) store16(Y + t * ldy, acc[t], nr, first);                                      \
  }
#define MM_INST_T(T) MM_INST(T, 8) MM_INST(T, 4) MM_INST(T, 2) MM_INST(T, 1)
MM_INST_T(Q4_0)
MM_INST_T(Q4_1)
MM_INST_T(Q8_0)

typedef void (*mm_tile_fn)(const __m512i *, const float *, const float *, const uint8_t *const *, const float *,
                           const xcorr *, int, int, float *, int64_t, int, int);
typedef void (*pack_fn)(const uint8_t *const[16], int, __m512i *, float *, float *, const uint8_t *, const uint8_t *);

LK_AVX512 void lk_mm_q32_avx512(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride,
                                int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  if (ntok == 1) {  // the same arithmetic without the transposed copy
    lk_mv_q32_avx512(wtype, Y + r0, W, Xq, ncols, r0, r1);
    return;
  }
  mm_tile_fn f[4];  // 8, 4, 2, 1 tokens
  pack_fn pack;
  if (wtype == LK_Q4_0) f[0] = mm_Q4_0_8, f[1] = mm_Q4_0_4, f[2] = mm_Q4_0_2, f[3] = mm_Q4_0_1, pack = pack_Q4_0;
  else if (wtype == LK_Q4_1) f[0] = mm_Q4_1_8, f[1] = mm_Q4_1_4, f[2] = mm_Q4_1_2, f[3] = mm_Q4_1_1, pack = pack_Q4_1;
  else f[0] = mm_Q8_0_8, f[1] = mm_Q8_0_4, f[2] = mm_Q8_0_2, f[3] = mm_Q8_0_1, pack = pack_Q8_0;
  const int bs = wbytes(wtype), xbs = xbytes(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs;
  _Alignas(64) __m512i pk[KC * 8];    // (block, 8) transposed tile
  _Alignas(64) float dws[KC * 16];    // (block, row) weight scales of the tile
  _Alignas(64) float cws[KC * 16];    // (block, row) Q4_1 mins of the tile
  _Alignas(64) float dx[XCAP];        // (token, block) activation scales
  _Alignas(64) xcorr c[XCAP];         // (token, block) activation corrections
  const uint8_t *xr[TMAX];
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
    const int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
    const uint8_t *wc = (const uint8_t *)W + kb0 * bs, *wend = (const uint8_t *)W + r1 * rb;
    int tmax = XCAP / nkb < TMAX ? XCAP / nkb : TMAX;
    for (int64_t tb = 0; tb < ntok; tb += tmax) {
      const int tt = (int)(ntok - tb < tmax ? ntok - tb : tmax);
      for (int t = 0; t < tt; t++) {
        xr[t] = (const uint8_t *)Xq + (tb + t) * xstride + kb0 * xbs;
        prep_x(wtype, xr[t], nkb, dx + t * nkb, c + t * nkb);
      }
      lk_prefetch pfc;
      for (int64_t r = r0; r < r1; r += 16) {
        const uint8_t *w[16], *pf, *pfend;
        tile_rows(wc, rb, r, r1, w);
        const uint8_t *tile_end = (const uint8_t *)W + (r + 16 < r1 ? r + 16 : r1) * rb;
        if (tb == 0) {
          if (r == r0) pfc = prefetch_start(w, nkb * bs, tile_end, wend);
          prefetch_next(&pfc, tile_end, &pf, &pfend);
        } else {
          pf = pfend = tile_end;  // a later token chunk finds the weights in L2 or L3
        }
        pack(w, nkb, pk, dws, cws, pf, pfend);
        const int nr = r1 - r < 16 ? (int)(r1 - r) : 16;
        for (int t = 0; t < tt;) {
          int left = tt - t, g = left >= 8 ? 0 : left >= 4 ? 1 : left >= 2 ? 2 : 3;
          f[g](pk, dws, cws, xr + t, dx + t * nkb, c + t * nkb, nkb, nkb, Y + (tb + t) * ldy + r, ldy, nr, kb0 == 0);
          t += 8 >> g;
        }
      }
    }
  }
}

#endif
