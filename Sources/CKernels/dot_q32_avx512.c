// AVX-512 VNNI products of Q4_0 / Q4_1 / Q8_0 weights with Q8_0 / Q8_1 activations.
//
// Layout: one 512-bit vector holds the same block of 4 weight rows — 16 bytes per row, the low
// half of the block's elements (lo) or the high half (hi) — so with the activation block's
// halves broadcast to all four 128-bit lanes, two vpdpbusd give 4 int32 partial sums per row
// for 128 multiply-adds, and one convert + one FMA apply the block scales of all 4 rows.
//
// vpdpbusd multiplies unsigned by signed bytes, so:
//   Q4_0: nibbles n (0..15) · x, the "-8" folded into a per-block correction  -8·dw·dx·Σx
//   Q4_1: nibbles n · x, the min folded in as                                   m·dx·Σx
//   Q8_0: (w + 128) · x, the offset folded in as                              -128·dw·dx·Σx
// A row's result is  Σ_b dw_b·dx_b·idot_b  +  Σ_b cw_b·cx_b  (cw = m for Q4_1, else dw), with
// the activation coefficients dx, cx computed once per call.
//
// Weight scales are kept [block][row] (lane 4b + r). The matvec takes them straight from the
// rows (the headers of 4 consecutive blocks of a row fit one 64-byte load) and prefetches the
// weights 8 KB ahead into L2; the matmul copies them once per 4-row tile and reuses them for
// 16 tokens, whose integer dots it reduces 4 tokens at a time (lane 4r + t) before converting
// to float, so the convert / scale / FMA run once per 4 tokens. No gathers: slow on Zen 4.
#include "internal.h"

#if LK_X86

enum { KC = 128 };  // blocks of a row handled per column chunk (4096 columns)
enum { TT = 16 };   // matmul: tokens prepared at once
enum { NTMAX = 16 }; // matmul: tokens per register tile (4 groups of 4)
// matvec: prefetch weights this far ahead, into L2. The hardware prefetcher does not follow the
// 4 short interleaved row streams of a tile; this doubled decode throughput on 2 threads.
#define PF_BYTES 8192
#define PF_HINT _MM_HINT_T1

LK_INLINE int wbytes(int wtype) { return wtype == LK_Q4_0 ? 18 : wtype == LK_Q4_1 ? 20 : 34; }
LK_INLINE int xbytes(int wtype) { return wtype == LK_Q4_1 ? 36 : 34; }

/// Activation coefficients of one row chunk: (nkb + pad to 4) blocks.
typedef struct {
  _Alignas(64) float dx[KC];  // (block) activation scale
  _Alignas(64) float cx[KC];  // (block) correction coefficient
} xcoef;

/// Fills c for activation blocks [kb0, kb0 + nkb) of row xrow, zero padded to a multiple of 4.
LK_AVX512 LK_INLINE void prep_x(int wtype, const uint8_t *xrow, int64_t kb0, int nkb, xcoef *c) {
  const int xbs = xbytes(wtype), xoff = xbs - 32;
  const float k = wtype == LK_Q4_0 ? -8.0f : wtype == LK_Q8_0 ? -128.0f : 1.0f;
  const __m256i ones = _mm256_set1_epi8(1);
  int b = 0;
  for (; b < nkb; b++) {
    const uint8_t *p = xrow + (kb0 + b) * xbs;
    __m256i s8 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, _mm256_loadu_si256((const __m256i *)(p + xoff)));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    uint16_t dh;
    memcpy(&dh, p, 2);
    float d = _cvtsh_ss(dh);
    c->dx[b] = d;
    c->cx[b] = k * d * (float)_mm_cvtsi128_si32(s4);
  }
  for (; b & 3; b++) c->dx[b] = c->cx[b] = 0;
}

/// Four per-block values v[b..b+3] expanded to [v_b × 4, v_b+1 × 4, ...] (the [block][row] layout).
LK_AVX512 LK_INLINE __m512 expand4(const float *v) {
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                               _mm512_castps128_ps512(_mm_loadu_ps(v)));
}

/// Lanes [4k..4k+3] of v (block k of a [block][row] vector) spread to [row r × 4] for r = 0..3.
LK_AVX512 LK_INLINE __m512 spread_block(__m512 v, int k) {
  __m512i idx = _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), _mm512_set1_epi32(4 * k));
  return _mm512_permutexvar_ps(idx, v);
}

/// Raw scale fields of 4 rows, transposed: Q4_1 -> uint32 (d | m << 16), others -> uint16 d;
/// element [b * 4 + r], zero padded to a multiple of 4 blocks.
LK_INLINE void copy_scales(int wtype, const uint8_t *const w[4], int nkb, void *dst) {
  const int bs = wbytes(wtype);
  int nb4 = (nkb + 3) & ~3;
  if (wtype == LK_Q4_1) {
    uint32_t *d = dst;
    for (int b = 0; b < nkb; b++)
      for (int r = 0; r < 4; r++) memcpy(d + 4 * b + r, w[r] + b * bs, 4);
    for (int b = nkb; b < nb4; b++)
      for (int r = 0; r < 4; r++) d[4 * b + r] = 0;
  } else {
    uint16_t *d = dst;
    for (int b = 0; b < nkb; b++)
      for (int r = 0; r < 4; r++) memcpy(d + 4 * b + r, w[r] + b * bs, 2);
    for (int b = nkb; b < nb4; b++)
      for (int r = 0; r < 4; r++) d[4 * b + r] = 0;
  }
}

/// Weight scales (dw) and correction weights (cw) of blocks [b, b + 4) of the tile, [block][row].
LK_AVX512 LK_INLINE void load_scales(int wtype, const void *sc, int b, __m512 *dw, __m512 *cw) {
  if (wtype == LK_Q4_1) {
    __m512i raw = _mm512_loadu_si512((const uint32_t *)sc + 4 * b);
    *dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
    *cw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(raw, 16)));
  } else {
    *dw = *cw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)sc + 4 * b)));
  }
}

/// Q4_0 / Q4_1 weight scales of blocks [b, b + nb) (nb <= 4) straight from the 4 rows, [block][row]:
/// the 4 block headers of a row lie within one 64-byte load (at 18- or 20-byte strides).
LK_AVX512 LK_INLINE void row_scales(int wtype, const uint8_t *const w[4], int b, int nb, __m512 *dw, __m512 *cw) {
  const int bs = wbytes(wtype);
  if (wtype == LK_Q8_0) {  // 34-byte blocks: two headers (words 0 and 17) per load, two loads per row
    __mmask64 ma = nb >= 2 ? 0xFFFFFFFFFull : 0x3, mb = nb >= 4 ? 0xFFFFFFFFFull : nb == 3 ? 0x3 : 0;
    __m512i a[4], c[4];
    for (int r = 0; r < 4; r++) {
      a[r] = _mm512_maskz_loadu_epi8(ma, w[r] + b * bs);
      c[r] = _mm512_maskz_loadu_epi8(mb, w[r] + (b + 2) * bs);
    }
    // word 17k of row r's load -> word 4k + r (k = 0, 1 from a; k = 2, 3 from c)
    const __m512i i01 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 49, 17, 0, 0, 32, 0, 0, 0, 49, 17, 0, 0, 32, 0);
    const __m512i i23 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         49, 17, 0, 0, 32, 0, 0, 0, 49, 17, 0, 0, 32, 0, 0, 0);
    __m512i lo = _mm512_mask_blend_epi16(0xCCCC, _mm512_permutex2var_epi16(a[0], i01, a[1]), _mm512_permutex2var_epi16(a[2], i23, a[3]));
    __m512i hi = _mm512_mask_blend_epi16(0xCCCC, _mm512_permutex2var_epi16(c[0], i01, c[1]), _mm512_permutex2var_epi16(c[2], i23, c[3]));
    __m256i raw = _mm256_blend_epi32(_mm512_castsi512_si256(lo), _mm512_castsi512_si256(hi), 0xF0);
    *dw = *cw = _mm512_cvtph_ps(raw);
    return;
  }
  __mmask64 m = nb >= 4 ? ~(__mmask64)0 : (((__mmask64)1 << (bs * (nb - 1) + 4)) - 1);
  __m512i r0 = _mm512_maskz_loadu_epi8(m, w[0] + b * bs), r1 = _mm512_maskz_loadu_epi8(m, w[1] + b * bs);
  __m512i r2 = _mm512_maskz_loadu_epi8(m, w[2] + b * bs), r3 = _mm512_maskz_loadu_epi8(m, w[3] + b * bs);
  if (wtype == LK_Q4_1) {  // d (word 10k) of row r -> word 4k + r, m (word 10k + 1) -> word 16 + 4k + r
    const __m512i i01 = _mm512_set_epi16(0, 0, 63, 31, 0, 0, 53, 21, 0, 0, 43, 11, 0, 0, 33, 1,
                                         0, 0, 62, 30, 0, 0, 52, 20, 0, 0, 42, 10, 0, 0, 32, 0);
    const __m512i i23 = _mm512_set_epi16(63, 31, 0, 0, 53, 21, 0, 0, 43, 11, 0, 0, 33, 1, 0, 0,
                                         62, 30, 0, 0, 52, 20, 0, 0, 42, 10, 0, 0, 32, 0, 0, 0);
    __m512i raw = _mm512_mask_blend_epi16(0xCCCCCCCC, _mm512_permutex2var_epi16(r0, i01, r1), _mm512_permutex2var_epi16(r2, i23, r3));
    *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
    *cw = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(raw, 1));
  } else {  // word 9k of row r -> word 4k + r (second source: index + 32)
    const __m512i i01 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         0, 0, 59, 27, 0, 0, 50, 18, 0, 0, 41, 9, 0, 0, 32, 0);
    const __m512i i23 = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                         59, 27, 0, 0, 50, 18, 0, 0, 41, 9, 0, 0, 32, 0, 0, 0);
    __m512i raw = _mm512_mask_blend_epi16(0xCCCCCCCC, _mm512_permutex2var_epi16(r0, i01, r1), _mm512_permutex2var_epi16(r2, i23, r3));
    *dw = *cw = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
  }
}

/// Block b of the 4 rows as unsigned bytes: lo = elements 0..15 of each row, hi = 16..31.
LK_AVX512 LK_INLINE void unpack4(int wtype, const uint8_t *const w[4], int b, __m512i *lo, __m512i *hi) {
  const int bs = wbytes(wtype);
  if (wtype == LK_Q8_0) {
    __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(w[0] + b * bs + 2))),
                                   _mm256_loadu_si256((const __m256i *)(w[1] + b * bs + 2)), 1);
    __m512i c = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(w[2] + b * bs + 2))),
                                   _mm256_loadu_si256((const __m256i *)(w[3] + b * bs + 2)), 1);
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    a = _mm512_xor_si512(a, k80);
    c = _mm512_xor_si512(c, k80);
    *lo = _mm512_shuffle_i32x4(a, c, 0x88);  // 128-bit lanes a0 a2 c0 c2
    *hi = _mm512_shuffle_i32x4(a, c, 0xDD);  // a1 a3 c1 c3
    return;
  }
  const int off = bs - 16;
  __m256i q01 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(w[0] + b * bs + off))),
                                        _mm_loadu_si128((const __m128i *)(w[1] + b * bs + off)), 1);
  __m256i q23 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(w[2] + b * bs + off))),
                                        _mm_loadu_si128((const __m128i *)(w[3] + b * bs + off)), 1);
  __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q01), q23, 1);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  *lo = _mm512_and_si512(q, m4);
  *hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), m4);
}

/// int32 partial sums (4 per row) of block b of the tile with activation block x (its qs).
LK_AVX512 LK_INLINE __m512i dot4(__m512i lo, __m512i hi, const uint8_t *xqs) {
  __m512i xl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)xqs));
  __m512i xh = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(xqs + 16)));
  return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xl), hi, xh);
}

/// [sum of lanes 4r..4r+3 of a] for r = 0..3.
LK_AVX512 LK_INLINE __m128 rowsums(__m512 a) {
  a = _mm512_add_ps(a, _mm512_permute_ps(a, 0x4E));
  a = _mm512_add_ps(a, _mm512_permute_ps(a, 0xB1));
  return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), a));
}

/// [sum of lanes r, 4+r, 8+r, 12+r of a] for r = 0..3.
LK_AVX512 LK_INLINE __m128 blocksums(__m512 a) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// ---- matvec ----------------------------------------------------------------------------------
/// 4 rows · one activation row over one column chunk: out[r].
LK_AVX512 LK_INLINE void mv_tile(int wtype, const uint8_t *const w[4], const uint8_t *xrow, const xcoef *xc, int nkb,
                                 float *out) {
  const int xbs = xbytes(wtype), xoff = xbs - 32;
  __m512 acc = _mm512_setzero_ps(), corr = _mm512_setzero_ps();
  for (int b4 = 0; b4 < nkb; b4 += 4) {
    int nb = nkb - b4 < 4 ? nkb - b4 : 4;
    __m512 dw, cw;
    row_scales(wtype, w, b4, nb, &dw, &cw);
    corr = _mm512_fmadd_ps(cw, expand4(xc->cx + b4), corr);
    __m512 dd = _mm512_mul_ps(dw, expand4(xc->dx + b4));
    for (int k = 0; k < nb; k++) {
      __m512i lo, hi;
      unpack4(wtype, w, b4 + k, &lo, &hi);
      __m512i dot = dot4(lo, hi, xrow + (b4 + k) * xbs + xoff);
      acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), spread_block(dd, k), acc);
    }
  }
  _mm_storeu_ps(out, _mm_add_ps(rowsums(acc), blocksums(corr)));
}

#define MV_INST(T)                                                                                              \
  static LK_AVX512 __attribute__((noinline)) void mv_##T(const uint8_t *const w[4], const uint8_t *xrow,        \
                                                         const xcoef *xc, int nkb, float *out) {               \
    mv_tile(LK_##T, w, xrow, xc, nkb, out);                                                                     \
  }
MV_INST(Q4_0)
MV_INST(Q4_1)
MV_INST(Q8_0)

typedef void (*mv_tile_fn)(const uint8_t *const[4], const uint8_t *, const xcoef *, int, float *);

/// Row pointers of the tile starting at row r (rows past r1 repeat the last valid row).
LK_INLINE void tile_rows(const uint8_t *wc, int64_t rb, int64_t r, int64_t r1, const uint8_t *w[4]) {
  for (int i = 0; i < 4; i++) w[i] = wc + (r + i < r1 ? r + i : r1 - 1) * rb;
}

LK_AVX512 void lk_mv_q32_avx512(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0,
                                int64_t r1) {
  mv_tile_fn f = wtype == LK_Q4_0 ? mv_Q4_0 : wtype == LK_Q4_1 ? mv_Q4_1 : mv_Q8_0;
  const int bs = wbytes(wtype), xbs = xbytes(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs;
  xcoef xc;
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
    int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
    const uint8_t *xrow = (const uint8_t *)xq + kb0 * xbs;
    prep_x(wtype, xrow, 0, nkb, &xc);
    const uint8_t *wc = (const uint8_t *)W + kb0 * bs, *wend = wc + r1 * rb;
    // the first PF_BYTES of the range have not been prefetched by an earlier tile
    for (const uint8_t *p = wc + r0 * rb; p < wc + r0 * rb + PF_BYTES && p < wend; p += 64) _mm_prefetch((const char *)p, PF_HINT);
    float out[4];
    for (int64_t r = r0; r < r1; r += 4) {
      // prefetch the weights PF_BYTES ahead: the hardware prefetcher alone does not keep up
      const uint8_t *pf = wc + r * rb + PF_BYTES;
      for (int64_t o = 0; o < 4 * rb && pf + o < wend; o += 64) _mm_prefetch((const char *)(pf + o), PF_HINT);
      const uint8_t *w[4];
      tile_rows(wc, rb, r, r1, w);
      f(w, xrow, &xc, nkb, out);
      int n = r1 - r < 4 ? (int)(r1 - r) : 4;
      for (int j = 0; j < n; j++) y[r - r0 + j] = kb0 ? y[r - r0 + j] + out[j] : out[j];
    }
  }
}

// ---- matmul ----------------------------------------------------------------------------------
/// 4 rows × NT tokens over one column chunk, one token at a time (the 1-3 token tails): out[t * 4 + r].
LK_AVX512 LK_INLINE void mm_tile(int wtype, int NT, const uint8_t *const w[4], const uint8_t *const *xrows,
                                 const xcoef *xc, int nkb, const void *sc, float *out) {
  const int xbs = xbytes(wtype), xoff = xbs - 32;
  // corrections first: Σ_b cw_b · cx_b per (row, token)
  {
    __m512 corr[NTMAX];
    for (int t = 0; t < NT; t++) corr[t] = _mm512_setzero_ps();
    for (int b4 = 0; b4 < nkb; b4 += 4) {
      __m512 dw, cw;
      load_scales(wtype, sc, b4, &dw, &cw);
      for (int t = 0; t < NT; t++) corr[t] = _mm512_fmadd_ps(cw, expand4(xc[t].cx + b4), corr[t]);
    }
    for (int t = 0; t < NT; t++) _mm_storeu_ps(out + 4 * t, blocksums(corr[t]));
  }
  __m512 acc[NTMAX];
  for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
  for (int b4 = 0; b4 < nkb; b4 += 4) {
    __m512 dw, cw;
    load_scales(wtype, sc, b4, &dw, &cw);
    int nb = nkb - b4 < 4 ? nkb - b4 : 4;
    for (int k = 0; k < nb; k++) {
      const int b = b4 + k;
      __m512i lo, hi;
      unpack4(wtype, w, b, &lo, &hi);
      __m512 s = spread_block(dw, k);
      for (int t = 0; t < NT; t++) {
        __m512i dot = dot4(lo, hi, xrows[t] + b * xbs + xoff);
        __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), s);
        acc[t] = _mm512_fmadd_ps(f, _mm512_set1_ps(xc[t].dx[b]), acc[t]);
      }
    }
  }
  for (int t = 0; t < NT; t++) _mm_storeu_ps(out + 4 * t, _mm_add_ps(_mm_loadu_ps(out + 4 * t), rowsums(acc[t])));
}

/// Four tokens' block dots d[j] (row r in lanes 4r..4r+3) summed per (row, token): lane 4r + j.
LK_AVX512 LK_INLINE __m512i reduce4(__m512i d0, __m512i d1, __m512i d2, __m512i d3) {
  __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(d0, d1), _mm512_unpackhi_epi32(d0, d1));
  __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(d2, d3), _mm512_unpackhi_epi32(d2, d3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

/// 4 rows × 4·NG tokens: the integer dots of 4 tokens are reduced to one vector (lane 4r + t)
/// before the conversion and scaling, so those run once per 4 tokens. dxT: (block, TT) scales.
LK_AVX512 LK_INLINE void mm_tile_r4(int wtype, int NG, const uint8_t *const w[4], const uint8_t *const *xrows,
                                    const xcoef *xc, const float *dxT, int nkb, const void *sc, float *out) {
  const int xbs = xbytes(wtype), xoff = xbs - 32, NT = 4 * NG;
  {
    __m512 corr[NTMAX];
    for (int t = 0; t < NT; t++) corr[t] = _mm512_setzero_ps();
    for (int b4 = 0; b4 < nkb; b4 += 4) {
      __m512 dw, cw;
      load_scales(wtype, sc, b4, &dw, &cw);
      for (int t = 0; t < NT; t++) corr[t] = _mm512_fmadd_ps(cw, expand4(xc[t].cx + b4), corr[t]);
    }
    for (int t = 0; t < NT; t++) _mm_storeu_ps(out + 4 * t, blocksums(corr[t]));
  }
  __m512 acc[NTMAX / 4];
  for (int g = 0; g < NG; g++) acc[g] = _mm512_setzero_ps();
  for (int b4 = 0; b4 < nkb; b4 += 4) {
    __m512 dw, cw;
    load_scales(wtype, sc, b4, &dw, &cw);
    int nb = nkb - b4 < 4 ? nkb - b4 : 4;
    for (int k = 0; k < nb; k++) {
      const int b = b4 + k;
      __m512i lo, hi;
      unpack4(wtype, w, b, &lo, &hi);
      __m512 s = spread_block(dw, k);
      for (int g = 0; g < NG; g++) {
        const int t = 4 * g;
        __m512i e = reduce4(dot4(lo, hi, xrows[t] + b * xbs + xoff), dot4(lo, hi, xrows[t + 1] + b * xbs + xoff),
                            dot4(lo, hi, xrows[t + 2] + b * xbs + xoff), dot4(lo, hi, xrows[t + 3] + b * xbs + xoff));
        __m512 u = _mm512_broadcast_f32x4(_mm_loadu_ps(dxT + b * TT + t));
        acc[g] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(e), s), u, acc[g]);
      }
    }
  }
  const __m512i tr = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  for (int g = 0; g < NG; g++)
    _mm512_storeu_ps(out + 16 * g, _mm512_add_ps(_mm512_loadu_ps(out + 16 * g), _mm512_permutexvar_ps(tr, acc[g])));
}

#define MMR_INST(T, NG)                                                                                         \
  static LK_AVX512 __attribute__((noinline)) void mmr_##T##_##NG(const uint8_t *const w[4],                     \
                                                                 const uint8_t *const *xrows, const xcoef *xc,  \
                                                                 const float *dxT, int nkb, const void *sc,     \
                                                                 float *out) {                                  \
    mm_tile_r4(LK_##T, NG, w, xrows, xc, dxT, nkb, sc, out);                                                    \
  }
MMR_INST(Q4_0, 4) MMR_INST(Q4_0, 2) MMR_INST(Q4_0, 1) MMR_INST(Q4_1, 4) MMR_INST(Q4_1, 2) MMR_INST(Q4_1, 1) MMR_INST(Q8_0, 4) MMR_INST(Q8_0, 2) MMR_INST(Q8_0, 1)
typedef void (*mmr_tile_fn)(const uint8_t *const[4], const uint8_t *const *, const xcoef *, const float *, int,
                            const void *, float *);

#define MM_INST(T, NT)                                                                                        \
  static LK_AVX512 __attribute__((noinline)) void mm_##T##_##NT(const uint8_t *const w[4],                    \
                                                                const uint8_t *const *xrows, const xcoef *xc, \
                                                                int nkb, const void *sc, float *out) {        \
    mm_tile(LK_##T, NT, w, xrows, xc, nkb, sc, out);                                                          \
  }
#define MM_INST_T(T) MM_INST(T, 2) MM_INST(T, 1)
MM_INST_T(Q4_0)
MM_INST_T(Q4_1)
MM_INST_T(Q8_0)

typedef void (*mm_tile_fn)(const uint8_t *const[4], const uint8_t *const *, const xcoef *, int, const void *, float *);

LK_AVX512 void lk_mm_q32_avx512(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride,
                                int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  mm_tile_fn f2, f1;  // token tails
  if (wtype == LK_Q4_0) f2 = mm_Q4_0_2, f1 = mm_Q4_0_1;
  else if (wtype == LK_Q4_1) f2 = mm_Q4_1_2, f1 = mm_Q4_1_1;
  else f2 = mm_Q8_0_2, f1 = mm_Q8_0_1;
  mmr_tile_fn fr16, fr8, fr4;
  if (wtype == LK_Q4_0) fr16 = mmr_Q4_0_4, fr8 = mmr_Q4_0_2, fr4 = mmr_Q4_0_1;
  else if (wtype == LK_Q4_1) fr16 = mmr_Q4_1_4, fr8 = mmr_Q4_1_2, fr4 = mmr_Q4_1_1;
  else fr16 = mmr_Q8_0_4, fr8 = mmr_Q8_0_2, fr4 = mmr_Q8_0_1;
  _Alignas(64) float dxT[KC * TT];  // (block, token) activation scales of the token chunk
  const int bs = wbytes(wtype), xbs = xbytes(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs;
  xcoef xc[TT];
  _Alignas(64) uint32_t sc[KC * 4];  // (block, row) raw scales of the current tile
  const uint8_t *xrows[TT];
  float out[NTMAX * 4];
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
    int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
    const uint8_t *wc = (const uint8_t *)W + kb0 * bs;
    for (int64_t tb = 0; tb < ntok; tb += TT) {
      int tt = (int)(ntok - tb < TT ? ntok - tb : TT);
      for (int t = 0; t < tt; t++) {
        xrows[t] = (const uint8_t *)Xq + (tb + t) * xstride + kb0 * xbs;
        prep_x(wtype, xrows[t], 0, nkb, &xc[t]);
        for (int b = 0; b < nkb; b++) dxT[b * TT + t] = xc[t].dx[b];
      }
      for (int64_t r = r0; r < r1; r += 4) {
        const uint8_t *w[4];
        tile_rows(wc, rb, r, r1, w);
        copy_scales(wtype, w, nkb, sc);
        int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        for (int t = 0; t < tt;) {
          int left = tt - t, nt = left >= 16 ? 16 : left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
          if (nt >= 4) (nt == 16 ? fr16 : nt == 8 ? fr8 : fr4)(w, xrows + t, xc + t, dxT + t, nkb, sc, out);
          else (nt == 2 ? f2 : f1)(w, xrows + t, xc + t, nkb, sc, out);
          for (int j = 0; j < nt; j++)
            for (int i = 0; i < nr; i++) {
              float *yp = Y + (tb + t + j) * ldy + r + i;
              *yp = kb0 ? *yp + out[4 * j + i] : out[4 * j + i];
            }
          t += nt;
        }
      }
    }
  }
}

#endif
