// Shared pieces of the AVX-512 Q4_0 / Q4_1 / Q8_0 kernels (dot_q32_avx512.c: matvec,
// mm_q32_avx512.c: matmul): layouts, activation coefficients, 16-row weight tiles, the
// per-block float step both kernels share, and the weight prefetch.
//
// Tiles of 16 weight rows, one row per 32-bit lane. For the matmul, block b of a tile is
// transposed once into 8 vectors of unsigned bytes — vector 2g holds elements 4g..4g+3 of every
// row, vector 2g+1 elements 16+4g..16+4g+3 — kept in L1 while token groups run over it: one
// vpdpbusd with 4 activation bytes broadcast (an embedded-broadcast memory operand) adds 4
// products to each row's int32 block dot, 8 of them give the block dots of 16 rows for one token,
// with no horizontal sums. The matvec (one token) skips the transposed copy: two vpdpbusd on 4
// untransposed rows give 4 partial sums per row, and one 4-way reduction of 4 such row groups
// yields the same 16 block dots, one per lane.
//
// vpdpbusd multiplies unsigned by signed bytes, so the weights enter as
//   Q4_0: nibbles n (0..15), the "-8" folded in as the integer correction     -8·Σx
//   Q4_1: nibbles n,         the min folded in as the float term             m·dx·Σx
//   Q8_0: w + 128,           the offset folded in as the integer correction -128·Σx
// (Σx: the activation block's integer sum), so idot below is the exact integer dot Σ w·x.
//
// Batching must not change results (8-bit activations make the model chaotic: a last-bit
// difference in one product can flip greedy tokens 30 layers later), so every (row, token)
// result is computed by the same float operations in the same order, whichever kernel (matvec,
// matmul, 16- or 4-row tile), token count, token group or row range produced it:
//   per column chunk of KC blocks:  acc = 0;  for each block b in order:
//     acc = fma(float(idot_b) · dw_b, dx_b, acc)        (Q4_1 then also acc = fma(m_b, dx_b·Σx_b, acc))
//   y = acc for the first chunk, y + acc for the next ones.
// Integer dots are exact whatever their summation order. No gathers: slow on Zen 4.
#pragma once
#include "internal.h"

#if LK_X86

#pragma clang fp contract(off)

enum { KC = 64 };      // blocks of a row per column chunk (2048 columns); part of the float order
enum { XCAP = 4096 };  // matmul: (token, block) activation coefficients prepared at once
enum { TMAX = 256 };   // matmul: tokens prepared at once, at most
// Prefetch weights this far ahead, into L2: the hardware prefetcher does not follow the 16
// short interleaved row streams of a tile (without software prefetch the matvec runs at 40%).
#define PF_BYTES 16384
#define PF_HINT _MM_HINT_T1

LK_INLINE int wbytes(int wtype) { return wtype == LK_Q4_0 ? 18 : wtype == LK_Q4_1 ? 20 : 34; }
LK_INLINE int xbytes(int wtype) { return wtype == LK_Q4_1 ? 36 : 34; }
/// Offset of an activation block's qs, and of the 4 bytes that pair with weight vector k (0..7).
LK_INLINE int xqs_off(int wtype) { return xbytes(wtype) - 32; }
LK_INLINE int xpair_off(int k) { return (k & 1) * 16 + (k >> 1) * 4; }

/// Per activation block: its scale dx and its correction c (Q4_1: float dx·Σx; else int K·Σx).
typedef union {
  float f;
  int32_t i;
} xcorr;

/// dx[b], c[b] for blocks [0, nkb) of the activation row chunk xrow.
LK_AVX512 LK_INLINE void prep_x(int wtype, const uint8_t *xrow, int nkb, float *dx, xcorr *c) {
  const int xbs = xbytes(wtype), xoff = xqs_off(wtype);
  const int32_t k = wtype == LK_Q4_0 ? -8 : -128;
  const __m256i ones = _mm256_set1_epi8(1);
  for (int b = 0; b < nkb; b++) {
    const uint8_t *p = xrow + b * xbs;
    __m256i s8 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones, _mm256_loadu_si256((const __m256i *)(p + xoff)));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    int32_t sum = _mm_cvtsi128_si32(s4);
    uint16_t dh;
    memcpy(&dh, p, 2);
    float d = _cvtsh_ss(dh);
    dx[b] = d;
    if (wtype == LK_Q4_1) c[b].f = d * (float)sum;
    else c[b].i = k * sum;
  }
}

// ---- weight tiles ------------------------------------------------------------------------------
/// 4x4 transpose of 32-bit lanes inside each 128-bit lane: out[g] lane 4j + i = z[i] lane 4j + g.
LK_AVX512 LK_INLINE void transpose4(const __m512i z[4], __m512i out[4]) {
  __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
  __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
  out[0] = _mm512_unpacklo_epi64(t0, t2);
  out[1] = _mm512_unpackhi_epi64(t0, t2);
  out[2] = _mm512_unpacklo_epi64(t1, t3);
  out[3] = _mm512_unpackhi_epi64(t1, t3);
}

/// 16 bytes at p0..p3 + off as the four 128-bit lanes of one vector.
LK_AVX512 LK_INLINE __m512i load4x16(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3,
                                     int64_t off) {
  __m512i z = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(p0 + off)));
  z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p1 + off)), 1);
  z = _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p2 + off)), 2);
  return _mm512_inserti32x4(z, _mm_loadu_si128((const __m128i *)(p3 + off)), 3);
}

/// Block b of the 16 rows w[0..15] as 8 vectors of unsigned bytes in the tile's lane order (row
/// 4i + j in lane 4j + i); v[k] pairs with activation bytes xpair_off(k)..+3 of the block.
LK_AVX512 LK_INLINE void tile16(int wtype, const uint8_t *const w[16], int b, __m512i v[8]) {
  const int bs = wbytes(wtype);
  const int64_t o = (int64_t)b * bs;
  __m512i z[4], lo[4];
  if (wtype == LK_Q8_0) {  // rows 4i..4i+3 in the 128-bit lanes of z[i] (elements 0..15) and zh[i] (16..31)
    __m512i zh[4], hi[4];
    for (int i = 0; i < 4; i++) {
      const uint8_t *const *g = w + 4 * i;
      __m512i a = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(g[0] + o + 2))),
                                     _mm256_loadu_si256((const __m256i *)(g[1] + o + 2)), 1);
      __m512i c = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(g[2] + o + 2))),
                                     _mm256_loadu_si256((const __m256i *)(g[3] + o + 2)), 1);
      z[i] = _mm512_shuffle_i32x4(a, c, 0x88);
      zh[i] = _mm512_shuffle_i32x4(a, c, 0xDD);
    }
    transpose4(z, lo);
    transpose4(zh, hi);
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    for (int g = 0; g < 4; g++) {
      v[2 * g] = _mm512_xor_si512(lo[g], k80);
      v[2 * g + 1] = _mm512_xor_si512(hi[g], k80);
    }
    return;
  }
  const int64_t q = o + bs - 16;
  for (int i = 0; i < 4; i++) z[i] = load4x16(w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3], q);
  transpose4(z, lo);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int g = 0; g < 4; g++) {
    v[2 * g] = _mm512_and_si512(lo[g], m4);
    v[2 * g + 1] = _mm512_and_si512(_mm512_srli_epi16(lo[g], 4), m4);
  }
}

/// Weight scales (dw) and correction weights (cw, Q4_1: the mins) of blocks [b, b + nb) (nb <= 4)
/// of 4 rows, [row][block] (lane 4r + k): the 4 block headers of a row are read with one or two
/// 64-byte loads and moved into place with two-source word permutes.
LK_AVX512 LK_INLINE void row_scales(int wtype, const uint8_t *const w[4], int b, int nb, __m512 *dw, __m512 *cw) {
  const int bs = wbytes(wtype);
  if (wtype == LK_Q8_0) {  // 34-byte blocks: two headers (words 0 and 17) per load, two loads per row
    __mmask64 ma = nb >= 2 ? 0xFFFFFFFFFull : 0x3, mb = nb >= 4 ? 0xFFFFFFFFFull : nb == 3 ? 0x3 : 0;
    __m512i a[4], c[4];
    for (int r = 0; r < 4; r++) {
      a[r] = _mm512_maskz_loadu_epi8(ma, w[r] + b * bs);
      c[r] = _mm512_maskz_loadu_epi8(mb, w[r] + (b + 2) * bs);
    }
    // word 4r + k <- word 17·(k & 1) of row r's load a (k < 2) or c (k >= 2); second source: + 32
    const __m512i ix = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        49, 32, 49, 32, 17, 0, 17, 0, 49, 32, 49, 32, 17, 0, 17, 0);
    __m512i r01 = _mm512_mask_blend_epi16(0xCCCC, _mm512_permutex2var_epi16(a[0], ix, a[1]), _mm512_permutex2var_epi16(c[0], ix, c[1]));
    __m512i r23 = _mm512_mask_blend_epi16(0xCCCC, _mm512_permutex2var_epi16(a[2], ix, a[3]), _mm512_permutex2var_epi16(c[2], ix, c[3]));
    *dw = *cw = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_mask_blend_epi16(0xFF00, r01, r23)));
    return;
  }
  __mmask64 m = nb >= 4 ? ~(__mmask64)0 : (((__mmask64)1 << (bs * (nb - 1) + 4)) - 1);
  __m512i r0 = _mm512_maskz_loadu_epi8(m, w[0] + b * bs), r1 = _mm512_maskz_loadu_epi8(m, w[1] + b * bs);
  __m512i r2 = _mm512_maskz_loadu_epi8(m, w[2] + b * bs), r3 = _mm512_maskz_loadu_epi8(m, w[3] + b * bs);
  if (wtype == LK_Q4_1) {  // d (word 10k) of row r -> word 4r + k, m (word 10k + 1) -> word 16 + 4r + k
    const __m512i ix = _mm512_set_epi16(63, 53, 43, 33, 31, 21, 11, 1, 63, 53, 43, 33, 31, 21, 11, 1,
                                        62, 52, 42, 32, 30, 20, 10, 0, 62, 52, 42, 32, 30, 20, 10, 0);
    __m512i raw = _mm512_mask_blend_epi16(0xFF00FF00, _mm512_permutex2var_epi16(r0, ix, r1), _mm512_permutex2var_epi16(r2, ix, r3));
    *dw = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
    *cw = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(raw, 1));
  } else {  // word 9k of row r -> word 4r + k (second source: index + 32)
    const __m512i ix = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                        59, 50, 41, 32, 27, 18, 9, 0, 59, 50, 41, 32, 27, 18, 9, 0);
    __m512i raw = _mm512_mask_blend_epi16(0xFF00, _mm512_permutex2var_epi16(r0, ix, r1), _mm512_permutex2var_epi16(r2, ix, r3));
    *dw = *cw = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
  }
}

/// transpose4 for floats.
LK_AVX512 LK_INLINE void transpose4f(const __m512 in[4], __m512 out[4]) {
  __m512i z[4], t[4];
  for (int i = 0; i < 4; i++) z[i] = _mm512_castps_si512(in[i]);
  transpose4(z, t);
  for (int i = 0; i < 4; i++) out[i] = _mm512_castsi512_ps(t[i]);
}

/// dw[k] / cw[k]: scales of block b + k (k < nb <= 4) of the 16 rows, in the tile's lane order.
LK_AVX512 LK_INLINE void scales16(int wtype, const uint8_t *const w[16], int b, int nb, __m512 dw[4], __m512 cw[4]) {
  __m512 d[4], c[4];
  for (int q = 0; q < 4; q++) row_scales(wtype, w + 4 * q, b, nb, &d[q], &c[q]);
  transpose4f(d, dw);
  if (wtype == LK_Q4_1) transpose4f(c, cw);
}

/// Spreading the prefetch of [pf, pfend) over a tile's nkb block steps: K lines per step (a
/// constant, unrolled; one tile's worth of rows over its blocks), `reps` times on a product's
/// first tile, which also covers the distance ahead.
typedef struct {
  const uint8_t *p, *end;
  int reps;
} lk_pfspread;

LK_INLINE int pf_lines(int wtype) { return (16 * wbytes(wtype) + 63) / 64; }

LK_INLINE lk_pfspread pf_spread(int wtype, const uint8_t *pf, const uint8_t *pfend, int nkb) {
  const int64_t per = (int64_t)pf_lines(wtype) * nkb;  // lines per tile
  return (lk_pfspread){pf, pfend, (int)(((pfend - pf + 63) / 64 + per - 1) / per)};
}

LK_INLINE void pf_step(int wtype, lk_pfspread *s) {
  const int k = pf_lines(wtype);
  for (int j = 0; j < s->reps && s->p < s->end; j++, s->p += 64 * k)
    for (int i = 0; i < k; i++) _mm_prefetch((const char *)(s->p + 64 * i), PF_HINT);
}

/// One block's step for one token: acc = fma(float(idot) · dw, dx, acc) (+ the Q4_1 min term).
LK_AVX512 LK_INLINE __m512 block_step(int wtype, __m512 acc, __m512i idot, __m512 dw, __m512 cw, const float *dx,
                                      const xcorr *c) {
  if (wtype != LK_Q4_1) idot = _mm512_add_epi32(idot, _mm512_set1_epi32(c->i));
  acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(idot), dw), _mm512_set1_ps(*dx), acc);
  if (wtype == LK_Q4_1) acc = _mm512_fmadd_ps(cw, _mm512_set1_ps(c->f), acc);
  return acc;
}

LK_AVX512 LK_INLINE __m512i bcast4(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/// Stores the 16 row results of one token (in the tile's lane order): y[0..nr) = (first ? acc : y + acc).
LK_AVX512 LK_INLINE void store16(float *y, __m512 acc, int nr, int first) {
  // lane 4j + i holds row 4i + j: the permutation is its own inverse
  acc = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), acc);
  __mmask16 m = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
  if (!first) acc = _mm512_add_ps(_mm512_maskz_loadu_ps(m, y), acc);
  _mm512_mask_storeu_ps(y, m, acc);
}

/// Row pointers of the 16-row tile starting at row r (rows past r1 repeat the last valid row).
LK_INLINE void tile_rows(const uint8_t *wc, int64_t rb, int64_t r, int64_t r1, const uint8_t *w[16]) {
  for (int i = 0; i < 16; i++) w[i] = wc + (r + i < r1 ? r + i : r1 - 1) * rb;
}

/// A prefetch cursor over the weight rows of one product: each 16-row tile prefetches (into L2,
/// spread over its blocks) from where the previous one stopped up to PF_BYTES past its own end.
typedef struct {
  const uint8_t *next, *end;  // next byte to prefetch; end of the product's rows
} lk_prefetch;

/// The start of a matmul: the first tile's rows are prefetched in the order its packing reads
/// them (block by block across its 16 rows), so that its first blocks arrive first.
LK_INLINE lk_prefetch prefetch_start(const uint8_t *const w[16], int64_t n, const uint8_t *tile_end,
                                     const uint8_t *end) {
  for (int64_t o = 0; o < n + 63; o += 64)
    for (int i = 0; i < 16; i++) _mm_prefetch((const char *)(w[i] + o), PF_HINT);
  return (lk_prefetch){tile_end, end};
}

/// The range the tile ending at tile_end prefetches: [*from, *to).
LK_INLINE void prefetch_next(lk_prefetch *p, const uint8_t *tile_end, const uint8_t **from, const uint8_t **to) {
  const uint8_t *t = tile_end + PF_BYTES < p->end ? tile_end + PF_BYTES : p->end;
  *from = p->next;
  *to = t > p->next ? t : p->next;
  p->next = *to;
}

#endif
