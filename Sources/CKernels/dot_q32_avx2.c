// AVX2 products of Q4_0 / Q4_1 / Q8_0 weights with Q8_0 / Q8_1 activations. A tile is 4 rows, and
// one 256-bit vector holds 8 elements of each of them, so a block is 4 vpmaddubsw against the
// activation's 8-byte pieces broadcast. Q4 nibbles stay unsigned with the same per-block
// corrections as the AVX-512 path (see dot_q32_avx512.c); their int16 sums add up (≤ 15360)
// before one vpmaddwd gives 2 int32 partial sums per row: 7 multiplier operations per block and
// token for all 4 rows. Q8_0 multiplies |w| by sign(x, w) (w + 128 would overflow vpmaddubsw's
// int16 sums, so each needs its own vpmaddwd) and needs no correction. The matmul unpacks a tile's
// blocks once into a stage that every token group then reads; the corrections of all its tokens
// are one small product after it.
#include "internal.h"

#if LK_X86

enum { KC = 128 };   // blocks of a row per column chunk (4096 columns)
enum { TT = 16 };    // matmul: tokens prepared at once
enum { NTMAX = 4 };  // matmul: tokens per register tile
#define PF_BYTES 8192

LK_INLINE int wbytes(int wtype) { return wtype == LK_Q4_0 ? 18 : wtype == LK_Q4_1 ? 20 : 34; }
LK_INLINE int xbytes(int wtype) { return wtype == LK_Q4_1 ? 36 : 34; }

/// Activation coefficients of one row chunk.
typedef struct {
  _Alignas(32) float dx[KC];  // (block) activation scale
  _Alignas(32) float cx[KC];  // (block) correction coefficient (0 for Q8_0)
} xcoef;

/// The int sum of block b's 32 quantized activations, as 8 int32 partial sums.
LK_AVX2 LK_INLINE __m256i xsum8(const uint8_t *p, int xoff) {
  const __m256i v = _mm256_loadu_si256((const __m256i *)(p + xoff));
  return _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), v), _mm256_set1_epi16(1));
}

LK_AVX2 LK_INLINE void prep_x(int wtype, const uint8_t *xrow, int nkb, xcoef *c) {
  const int xbs = xbytes(wtype), xoff = xbs - 32;
  const float k = wtype == LK_Q4_0 ? -8.0f : wtype == LK_Q4_1 ? 1.0f : 0.0f;
  int b = 0;
  // 8 blocks at a time: their sums reduced together, their scales converted together.
  for (; b + 8 <= nkb; b += 8) {
    const uint8_t *p = xrow + b * xbs;
    __m256i s[8];
    uint16_t dh[8];
    for (int j = 0; j < 8; j++) {
      s[j] = xsum8(p + j * xbs, xoff);
      memcpy(dh + j, p + j * xbs, 2);
    }
    // hadd tree: lanes [b0 b1 b2 b3 | b4 b5 b6 b7] after the cross-lane fix-up.
    __m256i h01 = _mm256_hadd_epi32(s[0], s[1]), h23 = _mm256_hadd_epi32(s[2], s[3]);
    __m256i h45 = _mm256_hadd_epi32(s[4], s[5]), h67 = _mm256_hadd_epi32(s[6], s[7]);
    __m256i h0123 = _mm256_hadd_epi32(h01, h23), h4567 = _mm256_hadd_epi32(h45, h67);
    __m256i lo = _mm256_permute2x128_si256(h0123, h4567, 0x20), hi = _mm256_permute2x128_si256(h0123, h4567, 0x31);
    __m256i sum = _mm256_add_epi32(lo, hi);
    __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));
    _mm256_store_ps(c->dx + b, d);
    _mm256_store_ps(c->cx + b, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(k), d), _mm256_cvtepi32_ps(sum)));
  }
  for (; b < nkb; b++) {
    const uint8_t *p = xrow + b * xbs;
    __m256i s8 = xsum8(p, xoff);
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    uint16_t dh;
    memcpy(&dh, p, 2);
    float d = _cvtsh_ss(dh);
    c->dx[b] = d;
    c->cx[b] = k * d * (float)_mm_cvtsi128_si32(s4);
  }
}

/// Raw scale fields of 4 rows, [block][row]: Q4_1 -> uint32 (d | m << 16), others -> uint16 d,
/// zero padded to an even number of blocks.
LK_INLINE void copy_scales(int wtype, const uint8_t *const w[4], int nkb, void *dst) {
  const int bs = wbytes(wtype);
  int nb2 = (nkb + 1) & ~1;
  if (wtype == LK_Q4_1) {
    uint32_t *d = dst;
    for (int b = 0; b < nkb; b++)
      for (int r = 0; r < 4; r++) memcpy(d + 4 * b + r, w[r] + b * bs, 4);
    for (int b = nkb; b < nb2; b++)
      for (int r = 0; r < 4; r++) d[4 * b + r] = 0;
  } else {
    uint16_t *d = dst;
    for (int b = 0; b < nkb; b++)
      for (int r = 0; r < 4; r++) memcpy(d + 4 * b + r, w[r] + b * bs, 2);
    for (int b = nkb; b < nb2; b++)
      for (int r = 0; r < 4; r++) d[4 * b + r] = 0;
  }
}

/// dw and cw of blocks [b, b + 2) of the tile, [block][row] (8 lanes).
LK_AVX2 LK_INLINE void load_scales(int wtype, const void *sc, int b, __m256 *dw, __m256 *cw) {
  if (wtype == LK_Q4_1) {
    __m256i raw = _mm256_loadu_si256((const __m256i *)((const uint32_t *)sc + 4 * b));
    __m256i lo = _mm256_and_si256(raw, _mm256_set1_epi32(0xFFFF)), hi = _mm256_srli_epi32(raw, 16);
    *dw = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(lo), _mm256_extracti128_si256(lo, 1)));
    *cw = _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(hi), _mm256_extracti128_si256(hi, 1)));
  } else {
    *dw = *cw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)sc + 4 * b)));
  }
}

/// Block b of the 4 rows: v[j] holds elements 8j .. 8j + 7 of rows 0, 1 | 2, 3 (8 bytes each);
/// for Q8_0 also v[4 + j] = |v[j]|.
LK_AVX2 LK_INLINE void unpack4(int wtype, const uint8_t *const w[4], int b, __m256i v[8]) {
  const int bs = wbytes(wtype);
  if (wtype == LK_Q8_0) {
    __m256i a0 = _mm256_loadu_si256((const __m256i *)(w[0] + b * bs + 2));
    __m256i a1 = _mm256_loadu_si256((const __m256i *)(w[1] + b * bs + 2));
    __m256i a2 = _mm256_loadu_si256((const __m256i *)(w[2] + b * bs + 2));
    __m256i a3 = _mm256_loadu_si256((const __m256i *)(w[3] + b * bs + 2));
    __m256i l01 = _mm256_unpacklo_epi64(a0, a1), h01 = _mm256_unpackhi_epi64(a0, a1);  // [0-7 | 16-23], [8-15 | 24-31]
    __m256i l23 = _mm256_unpacklo_epi64(a2, a3), h23 = _mm256_unpackhi_epi64(a2, a3);
    v[0] = _mm256_permute2x128_si256(l01, l23, 0x20);
    v[1] = _mm256_permute2x128_si256(h01, h23, 0x20);
    v[2] = _mm256_permute2x128_si256(l01, l23, 0x31);
    v[3] = _mm256_permute2x128_si256(h01, h23, 0x31);
    for (int j = 0; j < 4; j++) v[4 + j] = _mm256_sign_epi8(v[j], v[j]);
    return;
  }
  const int off = bs - 16;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(w[0] + b * bs + off))),
                                      _mm_loadu_si128((const __m128i *)(w[2] + b * bs + off)), 1);
  __m256i c = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(w[1] + b * bs + off))),
                                      _mm_loadu_si128((const __m128i *)(w[3] + b * bs + off)), 1);
  __m256i la = _mm256_and_si256(a, m4), lc = _mm256_and_si256(c, m4);
  __m256i ha = _mm256_and_si256(_mm256_srli_epi16(a, 4), m4), hc = _mm256_and_si256(_mm256_srli_epi16(c, 4), m4);
  v[0] = _mm256_unpacklo_epi64(la, lc);
  v[1] = _mm256_unpackhi_epi64(la, lc);
  v[2] = _mm256_unpacklo_epi64(ha, hc);
  v[3] = _mm256_unpackhi_epi64(ha, hc);
}

/// int32 sums of a block with activation block qs: [r0 r0 r1 r1 | r2 r2 r3 r3] (2 halves per row).
LK_AVX2 LK_INLINE __m256i dot4(int wtype, const __m256i v[8], const uint8_t *xqs) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i x[4], p[4];
  for (int j = 0; j < 4; j++) x[j] = _mm256_set1_epi64x(*(const int64_t *)(xqs + 8 * j));
  if (wtype == LK_Q8_0) {
    for (int j = 0; j < 4; j++)
      p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(v[4 + j], _mm256_sign_epi8(x[j], v[j])), ones);
    return _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3]));
  }
  for (int j = 0; j < 4; j++) p[j] = _mm256_maddubs_epi16(v[j], x[j]);
  return _mm256_madd_epi16(_mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3])), ones);
}

/// Block k (0 or 1) of a [block][row] vector of 2 blocks, laid out as dot4's sums.
LK_AVX2 LK_INLINE __m256 spread(__m256 v, int k) {
  const __m256i i = k ? _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7) : _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  return _mm256_permutevar8x32_ps(v, i);
}

/// Per-row sums [r0..r3] of an accumulator laid out as dot4's sums.
LK_AVX2 LK_INLINE __m128 rowsums(__m256 acc) {
  return _mm_hadd_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
}

// ---- matvec ----------------------------------------------------------------------------------
LK_AVX2 LK_INLINE void mv_tile(int wtype, const uint8_t *const w[4], const uint8_t *xrow, const xcoef *xc, int nkb,
                               const void *sc, float *out) {
  const int xbs = xbytes(wtype), xoff = xbs - 32;
  __m256 acc = _mm256_setzero_ps();
  __m128 corr = _mm_setzero_ps();  // Σ_b cw[b][r] · cx[b], one block after another (as the matmul)
  for (int b2 = 0; b2 < nkb; b2 += 2) {
    __m256 dw, cw;
    load_scales(wtype, sc, b2, &dw, &cw);
    int nb = nkb - b2 < 2 ? nkb - b2 : 2;
    for (int k = 0; k < nb; k++) {
      const int b = b2 + k;
      if (wtype != LK_Q8_0) {
        __m128 c = k ? _mm256_extractf128_ps(cw, 1) : _mm256_castps256_ps128(cw);
        corr = _mm_fmadd_ps(c, _mm_broadcast_ss(xc->cx + b), corr);
      }
      __m256i v[8];
      unpack4(wtype, w, b, v);
      __m256 d = _mm256_mul_ps(spread(dw, k), _mm256_broadcast_ss(xc->dx + b));
      acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot4(wtype, v, xrow + b * xbs + xoff)), d, acc);
    }
  }
  _mm_storeu_ps(out, wtype == LK_Q8_0 ? rowsums(acc) : _mm_add_ps(rowsums(acc), corr));
}

#define MV_INST(T)                                                                                            \
  static LK_AVX2 __attribute__((noinline)) void mv_##T(const uint8_t *const w[4], const uint8_t *xrow,        \
                                                       const xcoef *xc, int nkb, const void *sc, float *out) { \
    mv_tile(LK_##T, w, xrow, xc, nkb, sc, out);                                                               \
  }
MV_INST(Q4_0)
MV_INST(Q4_1)
MV_INST(Q8_0)

typedef void (*mv_tile_fn)(const uint8_t *const[4], const uint8_t *, const xcoef *, int, const void *, float *);

/// Row pointers of the tile starting at row r (rows past r1 repeat the last valid row).
LK_INLINE void tile_rows(const uint8_t *wc, int64_t rb, int64_t r, int64_t r1, const uint8_t *w[4]) {
  for (int i = 0; i < 4; i++) w[i] = wc + (r + i < r1 ? r + i : r1 - 1) * rb;
}

LK_AVX2 void lk_mv_q32_avx2(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0,
                            int64_t r1) {
  mv_tile_fn f = wtype == LK_Q4_0 ? mv_Q4_0 : wtype == LK_Q4_1 ? mv_Q4_1 : mv_Q8_0;
  const int bs = wbytes(wtype), xbs = xbytes(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs;
  xcoef xc;
  _Alignas(32) uint32_t sc[2][KC * 4];  // (tile parity, block, row) raw scales
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
    int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
    const uint8_t *xrow = (const uint8_t *)xq + kb0 * xbs;
    prep_x(wtype, xrow, nkb, &xc);
    const uint8_t *wc = (const uint8_t *)W + kb0 * bs, *wend = wc + r1 * rb;
    lk_prefetch_range(wc + r0 * rb, PF_BYTES, wend);
    const uint8_t *w[4], *wn[4];
    tile_rows(wc, rb, r0, r1, w);
    copy_scales(wtype, w, nkb, sc[0]);
    float out[4];
    for (int64_t r = r0, i = 0; r < r1; r += 4, i++) {
      lk_prefetch_range(wc + r * rb + PF_BYTES, 4 * rb, wend);
      if (r + 4 < r1) {
        tile_rows(wc, rb, r + 4, r1, wn);
        copy_scales(wtype, wn, nkb, sc[(i + 1) & 1]);
      }
      f(w, xrow, &xc, nkb, sc[i & 1], out);
      int n = r1 - r < 4 ? (int)(r1 - r) : 4;
      for (int j = 0; j < n; j++) y[r - r0 + j] = kb0 ? y[r - r0 + j] + out[j] : out[j];
      if (r + 4 < r1) memcpy(w, wn, sizeof w);
    }
  }
}

// ---- matmul ----------------------------------------------------------------------------------
/// Vectors of a block of 4 rows after unpack4.
LK_INLINE int vectors(int wtype) { return wtype == LK_Q8_0 ? 8 : 4; }

/// A 4-row tile of a column chunk, unpacked once for all its token groups.
typedef struct {
  __m256i v[KC * 8];              // unpack4 of each block: vectors(wtype) per block
  _Alignas(32) float d[KC][8];    // the weight scales as dot4's sums: spread of load_scales' dw
  _Alignas(16) float c[KC][4];    // load_scales' cw per block ([block][row]; Q4 only)
} stage4;

/// The scale fields of block b of the 4 rows as floats: dw (d) and cw (Q4_1: m, else d).
LK_AVX2 LK_INLINE void block_scales(int wtype, const uint8_t *const w[4], int b, __m128 *dw, __m128 *cw) {
  const int bs = wbytes(wtype);
  uint32_t f[4];
  for (int r = 0; r < 4; r++) memcpy(f + r, w[r] + b * bs, 4);  // Q4_0 / Q8_0: d and a first data byte pair
  __m128i raw = _mm_setr_epi32((int)f[0], (int)f[1], (int)f[2], (int)f[3]);
  __m128i lo = _mm_and_si128(raw, _mm_set1_epi32(0xFFFF));
  *dw = _mm_cvtph_ps(_mm_packus_epi32(lo, lo));
  *cw = wtype == LK_Q4_1 ? _mm_cvtph_ps(_mm_packus_epi32(_mm_srli_epi32(raw, 16), _mm_srli_epi32(raw, 16))) : *dw;
}

LK_AVX2 LK_INLINE void stage_tile(int wtype, const uint8_t *const w[4], int nkb, stage4 *s) {
  for (int b = 0; b < nkb; b++) {
    __m128 dw, cw;
    block_scales(wtype, w, b, &dw, &cw);
    _mm_store_ps(s->c[b], cw);
    _mm256_store_ps(s->d[b], spread(_mm256_castps128_ps256(dw), 0));
    unpack4(wtype, w, b, s->v + b * vectors(wtype));
  }
}

/// Tokens t < NT of a staged tile, each with the same operations in the same order as mv_tile:
/// row sums, plus the corrections corr[t] (Q4), added to y[t · ldy + i] when add, else stored
/// there, for rows i < nr.
LK_AVX2 LK_INLINE void mm_tile(int wtype, int NT, const stage4 *s, const uint8_t *const *xrows, const xcoef *xc,
                               int nkb, const float (*corr)[4], float *y, int64_t ldy, int nr, int add) {
  const int xbs = xbytes(wtype), xoff = xbs - 32;
  __m256 acc[NTMAX];
  for (int t = 0; t < NT; t++) acc[t] = _mm256_setzero_ps();
  for (int b = 0; b < nkb; b++) {
    const __m256 d = _mm256_load_ps(s->d[b]);
    for (int t = 0; t < NT; t++) {
      __m256 u = _mm256_mul_ps(d, _mm256_broadcast_ss(xc[t].dx + b));
      __m256i dot = dot4(wtype, s->v + b * vectors(wtype), xrows[t] + b * xbs + xoff);
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), u, acc[t]);
    }
  }
  for (int t = 0; t < NT; t++) {
    __m128 v = wtype == LK_Q8_0 ? rowsums(acc[t]) : _mm_add_ps(rowsums(acc[t]), _mm_loadu_ps(corr[t]));
    float *yt = y + t * ldy;
    if (nr == 4) {
      _mm_storeu_ps(yt, add ? _mm_add_ps(_mm_loadu_ps(yt), v) : v);
    } else {
      float o[4];
      _mm_storeu_ps(o, v);
      for (int i = 0; i < nr; i++) yt[i] = add ? yt[i] + o[i] : o[i];
    }
  }
}

/// The corrections of a staged tile for 16 tokens at once: corr[t][r] = Σ_b cw[b][r] · cxt[b][t].
LK_AVX2 LK_INLINE void corrections4(const stage4 *s, const float (*cxt)[TT], int nkb, float corr[TT][4]) {
  __m256 c[4][2];
  for (int r = 0; r < 4; r++) c[r][0] = c[r][1] = _mm256_setzero_ps();
  for (int b = 0; b < nkb; b++) {
    const __m256 x0 = _mm256_load_ps(cxt[b]), x1 = _mm256_load_ps(cxt[b] + 8);
    for (int r = 0; r < 4; r++) {
      const __m256 w = _mm256_broadcast_ss(s->c[b] + r);
      c[r][0] = _mm256_fmadd_ps(w, x0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(w, x1, c[r][1]);
    }
  }
  for (int h = 0; h < 2; h++) {  // [row][8 tokens] -> [token][4 rows]
    __m256 a = _mm256_unpacklo_ps(c[0][h], c[1][h]), b = _mm256_unpacklo_ps(c[2][h], c[3][h]);  // t0 t1 | t4 t5
    __m256 e = _mm256_unpackhi_ps(c[0][h], c[1][h]), f = _mm256_unpackhi_ps(c[2][h], c[3][h]);  // t2 t3 | t6 t7
    __m256 t0 = _mm256_shuffle_ps(a, b, 0x44), t1 = _mm256_shuffle_ps(a, b, 0xEE);
    __m256 t2 = _mm256_shuffle_ps(e, f, 0x44), t3 = _mm256_shuffle_ps(e, f, 0xEE);
    float(*o)[4] = corr + 8 * h;
    _mm_storeu_ps(o[0], _mm256_castps256_ps128(t0)), _mm_storeu_ps(o[4], _mm256_extractf128_ps(t0, 1));
    _mm_storeu_ps(o[1], _mm256_castps256_ps128(t1)), _mm_storeu_ps(o[5], _mm256_extractf128_ps(t1, 1));
    _mm_storeu_ps(o[2], _mm256_castps256_ps128(t2)), _mm_storeu_ps(o[6], _mm256_extractf128_ps(t2, 1));
    _mm_storeu_ps(o[3], _mm256_castps256_ps128(t3)), _mm_storeu_ps(o[7], _mm256_extractf128_ps(t3, 1));
  }
}

#define MM_INST(T, NT)                                                                                          \
  static LK_AVX2 __attribute__((noinline)) void mm_##T##_##NT(const stage4 *s, const uint8_t *const *xrows,   \
                                                              const xcoef *xc, int nkb, const float(*corr)[4], \
                                                              float *y, int64_t ldy, int nr, int add) {        \
    mm_tile(LK_##T, NT, s, xrows, xc, nkb, corr, y, ldy, nr, add);                                            \
  }
#define MM_INST_T(T) MM_INST(T, 4) MM_INST(T, 2) MM_INST(T, 1)
MM_INST_T(Q4_0)
MM_INST_T(Q4_1)
MM_INST_T(Q8_0)

typedef void (*mm_tile_fn)(const stage4 *, const uint8_t *const *, const xcoef *, int, const float (*)[4], float *,
                           int64_t, int, int);

LK_AVX2 void lk_mm_q32_avx2(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride,
                            int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  const int q4 = wtype != LK_Q8_0;  // has corrections
  mm_tile_fn fs[3];                   // NT = 4, 2, 1
  if (wtype == LK_Q4_0) fs[0] = mm_Q4_0_4, fs[1] = mm_Q4_0_2, fs[2] = mm_Q4_0_1;
  else if (wtype == LK_Q4_1) fs[0] = mm_Q4_1_4, fs[1] = mm_Q4_1_2, fs[2] = mm_Q4_1_1;
  else fs[0] = mm_Q8_0_4, fs[1] = mm_Q8_0_2, fs[2] = mm_Q8_0_1;
  const int bs = wbytes(wtype), xbs = xbytes(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs;
  xcoef xc[TT];
  _Alignas(32) stage4 stage;
  _Alignas(32) float cxt[KC][TT];  // Q4: xc[t].cx[b] as [b][t], zero past the token block
  float corr[TT][4];
  const uint8_t *xrows[TT];
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
    int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
    const uint8_t *wc = (const uint8_t *)W + kb0 * bs;
    for (int64_t tb = 0; tb < ntok; tb += TT) {
      int tt = (int)(ntok - tb < TT ? ntok - tb : TT);
      for (int t = 0; t < tt; t++) {
        xrows[t] = (const uint8_t *)Xq + (tb + t) * xstride + kb0 * xbs;
        prep_x(wtype, xrows[t], nkb, &xc[t]);
      }
      if (q4)
        for (int b = 0; b < nkb; b++)
          for (int t = 0; t < TT; t++) cxt[b][t] = t < tt ? xc[t].cx[b] : 0;
      // The tiles' rows are contiguous within the chunk: keep PF_BYTES ahead of the tile being
      // read in flight (stage_tile touches every line of a tile at once and would stall on them).
      const uint8_t *wend = wc + r1 * rb;
      lk_prefetch_range(wc + r0 * rb, PF_BYTES, wend);
      for (int64_t r = r0; r < r1; r += 4) {
        lk_prefetch_range(wc + r * rb + PF_BYTES, 4 * rb, wend);
        const uint8_t *w[4];
        tile_rows(wc, rb, r, r1, w);
        stage_tile(wtype, w, nkb, &stage);
        if (q4) corrections4(&stage, (const float (*)[TT])cxt, nkb, corr);
        int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        for (int t = 0; t < tt;) {
          int left = tt - t, nt = left >= 4 ? 4 : left >= 2 ? 2 : 1;
          fs[nt == 4 ? 0 : nt == 2 ? 1 : 2](&stage, xrows + t, xc + t, nkb, (const float (*)[4])corr[t],
                                            Y + (tb + t) * ldy + r, ldy, nr, kb0 > 0);
          t += nt;
        }
      }
    }
  }
}

#endif
