// AVX-512 VNNI matvec of Q4_0 / Q4_1 / Q8_0 weights (one activation row); see q32_avx512.h
// for the layouts and the float order it shares with the matmul.
#include "q32_avx512.h"

#if LK_X86

/// [sum of lanes 4r..4r+3 of d[i]] in lane 4r + i: with d[i] the dots of rows 4i..4i+3 (4
/// partial sums each), the block dots of the 16 rows in the tile's lane order.
LK_AVX512 LK_INLINE __m512i reduce4(__m512i d0, __m512i d1, __m512i d2, __m512i d3) {
  __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(d0, d1), _mm512_unpackhi_epi32(d0, d1));
  __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(d2, d3), _mm512_unpackhi_epi32(d2, d3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

/// Block b of the 4 rows g[0..3] as unsigned bytes: lo = elements 0..15 of each row (one row per
/// 128-bit lane), hi = elements 16..31.
LK_AVX512 LK_INLINE void unpack4(int wtype, const uint8_t *const g[4], int b, __m512i *lo, __m512i *hi) {
  const int bs = wbytes(wtype);
  const int64_t o = (int64_t)b * bs;
  if (wtype == LK_Q8_0) {
    __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(g[0] + o + 2))),
                                   _mm256_loadu_si256((const __m256i *)(g[1] + o + 2)), 1);
    __m512i c = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(g[2] + o + 2))),
                                   _mm256_loadu_si256((const __m256i *)(g[3] + o + 2)), 1);
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    a = _mm512_xor_si512(a, k80);
    c = _mm512_xor_si512(c, k80);
    *lo = _mm512_shuffle_i32x4(a, c, 0x88);
    *hi = _mm512_shuffle_i32x4(a, c, 0xDD);
    return;
  }
  __m512i q = load4x16(g[0], g[1], g[2], g[3], o + bs - 16);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  *lo = _mm512_and_si512(q, m4);
  *hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
}

/// 16 rows · one activation row over one column chunk, in the tile's lane order. Per block, the
/// rows 4i..4i+3 give 4 partial sums each from two vpdpbusd on the untransposed rows, and reduce4
/// turns the 4 groups' partial sums into one lane per row: the same integers as the transposed
/// tile of the matmul, followed by the same float steps.
LK_AVX512 LK_INLINE __m512 mv_tile(int wtype, const uint8_t *const w[16], const uint8_t *xrow, const float *dx,
                                   const xcorr *c, int nkb, const uint8_t *pf, const uint8_t *pfend) {
  const int xbs = xbytes(wtype), xoff = xqs_off(wtype);
  // prefetch [pf, pfend) spread over the blocks: a burst of ~100 prefetches stalls on the miss buffers
  lk_pfspread pfs = pf_spread(wtype, pf, pfend, nkb);
  __m512 acc = _mm512_setzero_ps();
  for (int b4 = 0; b4 < nkb; b4 += 4) {
    int nb = nkb - b4 < 4 ? nkb - b4 : 4;
    __m512 dw[4], cw[4];
    scales16(wtype, w, b4, nb, dw, cw);
    for (int k = 0; k < nb; k++) {
      const int b = b4 + k;
      pf_step(wtype, &pfs);
      const uint8_t *xq = xrow + b * xbs + xoff;
      __m512i xl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)xq));
      __m512i xh = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xq + 16)));
      __m512i d[4];
      for (int i = 0; i < 4; i++) {
        __m512i lo, hi;
        unpack4(wtype, w + 4 * i, b, &lo, &hi);
        d[i] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xl), hi, xh);
      }
      acc = block_step(wtype, acc, reduce4(d[0], d[1], d[2], d[3]), dw[k], cw[k], dx + b, c + b);
    }
  }
  return acc;
}

#define MV_INST(T)                                                                                              \
  static LK_AVX512 __attribute__((noinline)) __m512 mv_##T(const uint8_t *const w[16], const uint8_t *xrow,     \
                                                           const float *dx, const xcorr *c, int nkb,            \
                                                           const uint8_t *pf, const uint8_t *pfend) {           \
    return mv_tile(LK_##T, w, xrow, dx, c, nkb, pf, pfend);                                                     \
  }
MV_INST(Q4_0)
MV_INST(Q4_1)
MV_INST(Q8_0)

typedef __m512 (*mv_tile_fn)(const uint8_t *const[16], const uint8_t *, const float *, const xcorr *, int, const uint8_t *,
                             const uint8_t *);

/// 4 rows · one activation row over one column chunk: the 4 row results in lanes 0..3. Per 4
/// blocks, reduce4 gives the block dots in lanes 4r + k (row r, block k); after the scale
/// multiply, a transpose brings block k's 4 rows into 128-bit lane k, and the per-block steps run
/// on those 4-lane vectors in block order: the same operations per row as the 16-row kernels.
LK_AVX512 LK_INLINE __m128 mv4_tile(int wtype, const uint8_t *const g[4], const uint8_t *xrow, const float *dx,
                                    const xcorr *c, int nkb) {
  const int xbs = xbytes(wtype), xoff = xqs_off(wtype);
  const __m512i tr = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __m128 acc = _mm_setzero_ps();
  for (int b4 = 0; b4 < nkb; b4 += 4) {
    int nb = nkb - b4 < 4 ? nkb - b4 : 4;
    __m512 dw, cw;
    row_scales(wtype, g, b4, nb, &dw, &cw);
    __m512i d[4];
    for (int k = 0; k < 4; k++) {
      if (k < nb) {
        const uint8_t *xq = xrow + (b4 + k) * xbs + xoff;
        __m512i xl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)xq));
        __m512i xh = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xq + 16)));
        __m512i lo, hi;
        unpack4(wtype, g, b4 + k, &lo, &hi);
        d[k] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xl), hi, xh);
      } else {
        d[k] = _mm512_setzero_si512();
      }
    }
    __m512i e = reduce4(d[0], d[1], d[2], d[3]);  // lane 4r + k
    if (wtype != LK_Q4_1) {
      __m128i cc = _mm_maskz_loadu_epi32((__mmask8)((1u << nb) - 1), &c[b4].i);
      e = _mm512_add_epi32(e, _mm512_broadcast_i32x4(cc));
    }
    __m512 f = _mm512_permutexvar_ps(tr, _mm512_mul_ps(_mm512_cvtepi32_ps(e), dw));  // lane 4k + r
    __m512 m = wtype == LK_Q4_1 ? _mm512_permutexvar_ps(tr, cw) : f;
    for (int k = 0; k < nb; k++) {
      const int b = b4 + k;
      __m128 fk = k == 0 ? _mm512_castps512_ps128(f) : k == 1 ? _mm512_extractf32x4_ps(f, 1)
                : k == 2 ? _mm512_extractf32x4_ps(f, 2) : _mm512_extractf32x4_ps(f, 3);
      acc = _mm_fmadd_ps(fk, _mm_set1_ps(dx[b]), acc);
      if (wtype == LK_Q4_1) {
        __m128 mk = k == 0 ? _mm512_castps512_ps128(m) : k == 1 ? _mm512_extractf32x4_ps(m, 1)
                  : k == 2 ? _mm512_extractf32x4_ps(m, 2) : _mm512_extractf32x4_ps(m, 3);
        acc = _mm_fmadd_ps(mk, _mm_set1_ps(c[b].f), acc);
      }
    }
  }
  return acc;
}

typedef __m128 (*mv4_tile_fn)(const uint8_t *const[4], const uint8_t *, const float *, const xcorr *, int);

#define MV4_INST(T)                                                                                             \
  static LK_AVX512 __attribute__((noinline)) __m128 mv4_##T(const uint8_t *const g[4], const uint8_t *xrow,     \
                                                            const float *dx, const xcorr *c, int nkb) {         \
    return mv4_tile(LK_##T, g, xrow, dx, c, nkb);                                                               \
  }
MV4_INST(Q4_0)
MV4_INST(Q4_1)
MV4_INST(Q8_0)

/// The matvec starts each product (each thread's row range) with HEAD_ROWS rows 4 at a time,
/// prefetched in 4-row bursts PF_HEAD ahead, and continues with 16-row tiles and the spread
/// prefetch cursor. A 16-row tile needs data from all its rows for its first block, so on a cold
/// start it waits for 4 times the bytes a 4-row tile waits for, and the cursor has not yet run
/// ahead: most products here have 96 to 768 rows per thread, and the 4-row start saves about
/// 0.5 us on each. Both kernels do the same operations per row: the results do not depend on
/// which one computed a row.
enum { HEAD_ROWS = 64, SMALL_ROWS = 32 };
#define PF_HEAD 8192

LK_AVX512 void lk_mv_q32_avx512(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0,
                                int64_t r1) {
  mv_tile_fn f = wtype == LK_Q4_0 ? mv_Q4_0 : wtype == LK_Q4_1 ? mv_Q4_1 : mv_Q8_0;
  mv4_tile_fn f4 = wtype == LK_Q4_0 ? mv4_Q4_0 : wtype == LK_Q4_1 ? mv4_Q4_1 : mv4_Q8_0;
  const int bs = wbytes(wtype), xbs = xbytes(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs;
  const uint8_t *const wrow = (const uint8_t *)W, *const wend = wrow + r1 * rb;
  _Alignas(64) float dx[KC];
  _Alignas(64) xcorr c[KC];
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
    const int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
    const uint8_t *xrow = (const uint8_t *)xq + kb0 * xbs, *wc = wrow + kb0 * bs;
    prep_x(wtype, xrow, nkb, dx, c);
    // A product of at most SMALL_ROWS rows (a LoRA shrink: rank rows) is all 16-row tiles: its
    // rows are short, and the 4-row start cost more than it saved (one adapter's 7 shrinks of
    // rank 16 with their x quantized, one thread: 4.65 against 4.97 us with A in L2, 6.37
    // against 6.91 from memory, 2026-12-06).
    const int64_t rh = r1 - r0 <= SMALL_ROWS ? r0 : r1 - r0 < HEAD_ROWS ? r1 : r0 + HEAD_ROWS;
    lk_prefetch_range(wrow + r0 * rb, PF_HEAD, wend);
    for (int64_t r = r0; r < rh; r += 4) {
      lk_prefetch_range(wrow + r * rb + PF_HEAD, 4 * rb, wend);
      const uint8_t *g[4];
      for (int i = 0; i < 4; i++) g[i] = wc + (r + i < r1 ? r + i : r1 - 1) * rb;
      __m128 acc = f4(g, xrow, dx, c, nkb);
      const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
      const __mmask8 m = (__mmask8)((1u << nr) - 1);
      if (kb0) acc = _mm_add_ps(_mm_maskz_loadu_ps(m, y + (r - r0)), acc);
      _mm_mask_storeu_ps(y + (r - r0), m, acc);
    }
    lk_prefetch pfc = {wrow + rh * rb + PF_HEAD, wend};
    for (int64_t r = rh; r < r1; r += 16) {
      const uint8_t *w[16], *pf, *pfend;
      tile_rows(wc, rb, r, r1, w);
      prefetch_next(&pfc, wrow + (r + 16 < r1 ? r + 16 : r1) * rb, &pf, &pfend);
      store16(y + (r - r0), f(w, xrow, dx, c, nkb, pf, pfend), r1 - r < 16 ? (int)(r1 - r) : 16, kb0 == 0);
    }
  }
}

#endif
