// LoRA products for the rows of one adapter: shrink (x → A·x, rank values per row) and expand
// (y += s · Bᵀ-weighted sum of the rank values). Both stream A and Bᵀ once per call per row, in
// F16 (converted with F16C / AVX-512) or F32, with no per-element calls.
#include "internal.h"
#include "lk_lora.h"

static inline float ld1(int type, const void *p, int64_t i) {
  return type == LK_F16 ? lk_h2f(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

static void shrink_scalar(float *t, int64_t ldt, const float *x, int64_t ldx, int64_t ntok, int type, const void *a,
                          int64_t rank, int64_t cols) {
  for (int64_t i = 0; i < ntok; i++)
    for (int64_t k = 0; k < rank; k++) {
      float s = 0;
      for (int64_t j = 0; j < cols; j++) s += ld1(type, a, k * cols + j) * x[i * ldx + j];
      t[i * ldt + k] = s;
    }
}

static void expand_scalar(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, int type, const void *bt,
                          int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale) {
  for (int64_t i = 0; i < ntok; i++)
    for (int64_t k = 0; k < rank; k++) {
      const float w = scale * t[i * ldt + k];
      for (int64_t c = c0; c < c1; c++) y[i * ldy + c] += w * ld1(type, bt, k * rows + c);
    }
}

#if LK_X86
LK_AVX512 static inline __m512 ld16_512(int type, const void *p, int64_t i) {
  return type == LK_F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)))
                        : _mm512_loadu_ps((const float *)p + i);
}

LK_AVX512 static void shrink_avx512(float *t, int64_t ldt, const float *x, int64_t ldx, int64_t ntok, int type,
                                    const void *a, int64_t rank, int64_t cols) {
  const int64_t cv = cols & ~(int64_t)15;
  for (int64_t k = 0; k < rank; k++) {
    const int64_t row = k * cols;
    int64_t i = 0;
    for (; i + 4 <= ntok; i += 4) {  // four rows of x share each load of A
      __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      const float *x0 = x + i * ldx;
      for (int64_t j = 0; j < cv; j += 16) {
        const __m512 w = ld16_512(type, a, row + j);
        s0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x0 + j), s0);
        s1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x0 + ldx + j), s1);
        s2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x0 + 2 * ldx + j), s2);
        s3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x0 + 3 * ldx + j), s3);
      }
      float r[4] = {_mm512_reduce_add_ps(s0), _mm512_reduce_add_ps(s1), _mm512_reduce_add_ps(s2),
                    _mm512_reduce_add_ps(s3)};
      for (int64_t j = cv; j < cols; j++)
        for (int q = 0; q < 4; q++) r[q] += ld1(type, a, row + j) * x0[q * ldx + j];
      for (int q = 0; q < 4; q++) t[(i + q) * ldt + k] = r[q];
    }
    for (; i < ntok; i++) {
      __m512 s = _mm512_setzero_ps();
      const float *xi = x + i * ldx;
      for (int64_t j = 0; j < cv; j += 16) s = _mm512_fmadd_ps(ld16_512(type, a, row + j), _mm512_loadu_ps(xi + j), s);
      float r = _mm512_reduce_add_ps(s);
      for (int64_t j = cv; j < cols; j++) r += ld1(type, a, row + j) * xi[j];
      t[i * ldt + k] = r;
    }
  }
}

LK_AVX512 static void expand_avx512(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, int type,
                                    const void *bt, int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale) {
  for (int64_t i = 0; i < ntok; i++) {
    float *yi = y + i * ldy;
    const float *ti = t + i * ldt;
    int64_t c = c0;
    for (; c + 64 <= c1; c += 64) {  // 64 columns in registers across all of rank
      __m512 a0 = _mm512_loadu_ps(yi + c), a1 = _mm512_loadu_ps(yi + c + 16);
      __m512 a2 = _mm512_loadu_ps(yi + c + 32), a3 = _mm512_loadu_ps(yi + c + 48);
      for (int64_t k = 0; k < rank; k++) {
        const __m512 w = _mm512_set1_ps(scale * ti[k]);
        const int64_t o = k * rows + c;
        a0 = _mm512_fmadd_ps(w, ld16_512(type, bt, o), a0);
        a1 = _mm512_fmadd_ps(w, ld16_512(type, bt, o + 16), a1);
        a2 = _mm512_fmadd_ps(w, ld16_512(type, bt, o + 32), a2);
        a3 = _mm512_fmadd_ps(w, ld16_512(type, bt, o + 48), a3);
      }
      _mm512_storeu_ps(yi + c, a0);
      _mm512_storeu_ps(yi + c + 16, a1);
      _mm512_storeu_ps(yi + c + 32, a2);
      _mm512_storeu_ps(yi + c + 48, a3);
    }
    for (; c + 16 <= c1; c += 16) {
      __m512 acc = _mm512_loadu_ps(yi + c);
      for (int64_t k = 0; k < rank; k++)
        acc = _mm512_fmadd_ps(_mm512_set1_ps(scale * ti[k]), ld16_512(type, bt, k * rows + c), acc);
      _mm512_storeu_ps(yi + c, acc);
    }
    if (c < c1) expand_scalar(yi, 0, ti, 0, 1, type, bt, rank, rows, c, c1, scale);
  }
}

LK_AVX2 static inline __m256 ld8_256(int type, const void *p, int64_t i) {
  return type == LK_F16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)))
                        : _mm256_loadu_ps((const float *)p + i);
}

LK_AVX2 static inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LK_AVX2 static void shrink_avx2(float *t, int64_t ldt, const float *x, int64_t ldx, int64_t ntok, int type,
                                const void *a, int64_t rank, int64_t cols) {
  const int64_t cv = cols & ~(int64_t)7;
  for (int64_t k = 0; k < rank; k++)
    for (int64_t i = 0; i < ntok; i++) {
      __m256 s = _mm256_setzero_ps();
      const float *xi = x + i * ldx;
      for (int64_t j = 0; j < cv; j += 8) s = _mm256_fmadd_ps(ld8_256(type, a, k * cols + j), _mm256_loadu_ps(xi + j), s);
      float r = hsum8(s);
      for (int64_t j = cv; j < cols; j++) r += ld1(type, a, k * cols + j) * xi[j];
      t[i * ldt + k] = r;
    }
}

LK_AVX2 static void expand_avx2(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, int type,
                                const void *bt, int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale) {
  for (int64_t i = 0; i < ntok; i++) {
    float *yi = y + i * ldy;
    const float *ti = t + i * ldt;
    int64_t c = c0;
    for (; c + 32 <= c1; c += 32) {
      __m256 a0 = _mm256_loadu_ps(yi + c), a1 = _mm256_loadu_ps(yi + c + 8);
      __m256 a2 = _mm256_loadu_ps(yi + c + 16), a3 = _mm256_loadu_ps(yi + c + 24);
      for (int64_t k = 0; k < rank; k++) {
        const __m256 w = _mm256_set1_ps(scale * ti[k]);
        const int64_t o = k * rows + c;
        a0 = _mm256_fmadd_ps(w, ld8_256(type, bt, o), a0);
        a1 = _mm256_fmadd_ps(w, ld8_256(type, bt, o + 8), a1);
        a2 = _mm256_fmadd_ps(w, ld8_256(type, bt, o + 16), a2);
        a3 = _mm256_fmadd_ps(w, ld8_256(type, bt, o + 24), a3);
      }
      _mm256_storeu_ps(yi + c, a0);
      _mm256_storeu_ps(yi + c + 8, a1);
      _mm256_storeu_ps(yi + c + 16, a2);
      _mm256_storeu_ps(yi + c + 24, a3);
    }
    if (c < c1) expand_scalar(yi, 0, ti, 0, 1, type, bt, rank, rows, c, c1, scale);
  }
}
#endif

// ---- Q8 factors ---------------------------------------------------------------------------
// A: ggml's Q8_0 rows (the shrink is lk_matmul). B (rows x rank): each row's rank values (padded
// with zeros to a multiple of 4, r4) quantized as one int8 block with a half scale, stored by
// groups of 16 rows for VNNI: per group, r4 / 4 vectors of 64 bytes, byte 4j + i of vector q
// holding B[16g + j][4q + i] + 128 as an unsigned byte, then the group's 16 scales (halves).
// The expand quantizes each row of t (rank values) to int8 too (scale max|t| / 127), so that
// Σ_k t_k · B[c][k] is an integer dot of length r4 per output: r4 / 4 vpdpbusd for 16 outputs
// on AVX-512 VNNI, where a per-column layout needs a conversion and an FMA per output and rank.
// Every ISA computes the same: the exact integer dot, then y = fma(float(dot), e_c · (s · dt), y).

LK_INLINE int64_t q8r_rank4(int64_t rank) { return (rank + 3) & ~(int64_t)3; }
/// Byte of element k of lane j (0..15) in 64-byte vectors holding 4 consecutive elements per lane:
/// the VNNI layout of both the B groups here and the A records below.
LK_INLINE int64_t vnni_at(int64_t k, int j) { return 64 * (k / 4) + 4 * j + k % 4; }
LK_INLINE int64_t q8r_group_bytes(int64_t rank) { return 16 * q8r_rank4(rank) + 32; }

int64_t lk_lora_b_q8_bytes(int64_t rows, int64_t rank) { return rows / 16 * q8r_group_bytes(rank); }

/// n values (n <= LK_LORA_Q8_MAX_RANK) as int8 with one scale (amax / 127), rounding half away
/// from zero; returns the scale (0 for an all-zero row).
static float q8r_quantize(const float *v, int64_t n, int8_t *q) {
  float amax = 0;
  for (int64_t k = 0; k < n; k++) amax = fmaxf(amax, fabsf(v[k]));
  const float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  for (int64_t k = 0; k < n; k++) q[k] = (int8_t)lk_round_away(v[k] * id);
  return d;
}

void lk_lora_pack_b_q8(const float *b, int64_t rows, int64_t rank, void *dst) {
  const int64_t r4 = q8r_rank4(rank), gb = q8r_group_bytes(rank);
  int8_t q[LK_LORA_Q8_MAX_RANK];
  for (int64_t r = 0; r < rows; r++) {
    uint8_t *g = (uint8_t *)dst + (r / 16) * gb;
    const int j = (int)(r % 16);
    const float d = q8r_quantize(b + r * rank, rank, q);
    for (int64_t k = rank; k < r4; k++) q[k] = 0;
    for (int64_t k = 0; k < r4; k++) g[vnni_at(k, j)] = (uint8_t)(q[k] + 128);
    const uint16_t h = lk_f2h(d);
    memcpy(g + 16 * r4 + 2 * j, &h, 2);
  }
}

void lk_lora_unpack_b_q8(const void *src, int64_t rows, int64_t rank, float *b) {
  const int64_t r4 = q8r_rank4(rank), gb = q8r_group_bytes(rank);
  for (int64_t r = 0; r < rows; r++) {
    const uint8_t *g = (const uint8_t *)src + (r / 16) * gb;
    const int j = (int)(r % 16);
    uint16_t h;
    memcpy(&h, g + 16 * r4 + 2 * j, 2);
    const float e = lk_h2f(h);
    for (int64_t k = 0; k < rank; k++) b[r * rank + k] = e * (float)((int)g[vnni_at(k, j)] - 128);
  }
}

/// One row of t quantized for the expand: tq (r4 bytes, zero padded), its sum, and s · dt.
typedef struct {
  _Alignas(16) int8_t q[LK_LORA_Q8_MAX_RANK];
  int32_t sum;
  float sdt;
} q8r_t;

static void q8r_prepare(const float *t, int64_t rank, float scale, q8r_t *p) {
  memset(p->q, 0, sizeof p->q);
  const float dt = q8r_quantize(t, rank, p->q);
  int32_t s = 0;
  for (int64_t k = 0; k < rank; k++) s += p->q[k];
  p->sum = s;
  p->sdt = scale * dt;
}

#if LK_X86
/// q8r_prepare's bytes, sum and sdt, 16 values at a time (the same operations per value: the
/// max is exact, then v · (1 / d) and lk_round_away's truncate-then-step); p->q is written up
/// to rank rounded up to 4, which is all the expands read.
LK_AVX512 static void q8r_prepare_avx512(const float *t, int64_t rank, float scale, q8r_t *p) {
  __m512 amax = _mm512_setzero_ps();
  for (int64_t k = 0; k < rank; k += 16) {
    const __mmask16 m = rank - k >= 16 ? 0xFFFF : (__mmask16)((1u << (rank - k)) - 1);
    amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_maskz_loadu_ps(m, t + k)));
  }
  const float d = _mm512_reduce_max_ps(amax) / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
  const __m512 vid = _mm512_set1_ps(id), half = _mm512_set1_ps(0.5f), mhalf = _mm512_set1_ps(-0.5f);
  const __m512i one = _mm512_set1_epi32(1);
  __m512i sum = _mm512_setzero_si512();
  const int64_t r4 = q8r_rank4(rank);
  for (int64_t k = 0; k < r4; k += 16) {
    const __mmask16 m = rank - k >= 16 ? 0xFFFF : rank > k ? (__mmask16)((1u << (rank - k)) - 1) : 0;
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, t + k), vid);
    const __m512i i = _mm512_cvttps_epi32(v);
    const __m512 frac = _mm512_sub_ps(v, _mm512_cvtepi32_ps(i));
    __m512i q = _mm512_mask_add_epi32(i, _mm512_cmp_ps_mask(frac, half, _CMP_GE_OQ), i, one);
    q = _mm512_mask_sub_epi32(q, _mm512_cmp_ps_mask(frac, mhalf, _CMP_LE_OQ), q, one);
    q = _mm512_maskz_mov_epi32(m, q);
    sum = _mm512_add_epi32(sum, q);
    const __mmask16 w = r4 - k >= 16 ? 0xFFFF : (__mmask16)((1u << (r4 - k)) - 1);
    _mm_mask_storeu_epi8(p->q + k, w, _mm512_cvtepi32_epi8(q));
  }
  p->sum = _mm512_reduce_add_epi32(sum);
  p->sdt = scale * d;
}
#endif

static void expand_q8_scalar(float *y, const q8r_t *p, const uint8_t *B, int64_t rank, int64_t c0, int64_t c1) {
  const int64_t r4 = q8r_rank4(rank), gb = q8r_group_bytes(rank);
  for (int64_t c = c0; c < c1; c++) {
    const uint8_t *g = B + (c / 16) * gb;
    const int j = (int)(c % 16);
    int32_t dot = 0;
    for (int64_t k = 0; k < r4; k++) dot += (int32_t)g[vnni_at(k, j)] * p->q[k];
    dot -= 128 * p->sum;
    uint16_t h;
    memcpy(&h, g + 16 * r4 + 2 * j, 2);
    y[c] = fmaf((float)dot, lk_h2f(h) * p->sdt, y[c]);
  }
}

#if LK_X86
/// Groups of 16 rows prefetched ahead (a decoding row's factors come from memory, in calls of a
/// few KB: too short for the hardware prefetcher).
enum { EXPAND_PF = 4 };

LK_AVX512 static void expand_q8_avx512(float *y, const q8r_t *p, const uint8_t *B, int64_t rank, int64_t c0,
                                       int64_t c1) {
  const int64_t r4 = q8r_rank4(rank), gb = q8r_group_bytes(rank), nq = r4 / 4;
  const char *end = (const char *)B + (c1 / 16) * gb;
  lk_prefetch_range(B + (c0 / 16) * gb, EXPAND_PF * gb, end);
  int32_t tq4[LK_LORA_Q8_MAX_RANK / 4];
  memcpy(tq4, p->q, (size_t)r4);
  const __m512i corr = _mm512_set1_epi32(128 * p->sum);
  const __m512 sdt = _mm512_set1_ps(p->sdt);
  for (int64_t c = c0; c < c1; c += 16) {
    const uint8_t *g = B + (c / 16) * gb;
    lk_prefetch_range(g + EXPAND_PF * gb, gb, end);
    __m512i acc = _mm512_setzero_si512();
    for (int64_t q = 0; q < nq; q++)
      acc = _mm512_dpbusd_epi32(acc, _mm512_loadu_si512(g + 64 * q), _mm512_set1_epi32(tq4[q]));
    const __m512 dot = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, corr));
    const __m512 w = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + 16 * r4))), sdt);
    _mm512_storeu_ps(y + c, _mm512_fmadd_ps(dot, w, _mm512_loadu_ps(y + c)));
  }
}

/// AVX2 without VNNI: the unsigned bytes widened to 16 bits and multiplied in pairs (vpmaddwd,
/// exact), 8 rows at a time.
LK_AVX2 static void expand_q8_avx2(float *y, const q8r_t *p, const uint8_t *B, int64_t rank, int64_t c0,
                                   int64_t c1) {
  const int64_t r4 = q8r_rank4(rank), gb = q8r_group_bytes(rank), nq = r4 / 4;
  const __m256i corr = _mm256_set1_epi32(128 * p->sum);
  const __m256 sdt = _mm256_set1_ps(p->sdt);
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  // t's quads as 16-bit values, 4 per 64-bit lane: [t4q .. t4q+3] in every lane
  _Alignas(32) __m256i tv4[LK_LORA_Q8_MAX_RANK / 4];
  for (int64_t q = 0; q < nq; q++) {
    int32_t four;
    memcpy(&four, p->q + 4 * q, 4);
    tv4[q] = _mm256_broadcastq_epi64(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(four)));
  }
  for (int64_t c = c0; c < c1; c += 8) {
    const uint8_t *g = B + (c / 16) * gb;
    const int half = (int)((c / 8) % 2);  // rows 0-7 or 8-15 of the group: bytes 32·half of each vector
    __m256i acc = _mm256_setzero_si256();
    for (int64_t q = 0; q < nq; q++) {
      const __m256i tv = tv4[q];
      const uint8_t *v = g + 64 * q + 32 * half;
      // rows 0-3 (k 0..3 each) and rows 4-7 as 16-bit values; pairs of products per row
      const __m256i lo = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)v)), tv);
      const __m256i hi = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(v + 16))), tv);
      acc = _mm256_add_epi32(acc, _mm256_hadd_epi32(lo, hi));  // rows 0 1 4 5 | 2 3 6 7
    }
    const __m256i dot = _mm256_sub_epi32(_mm256_permutevar8x32_epi32(acc, order), corr);
    const __m256 w = _mm256_mul_ps(
        _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 16 * r4 + 16 * half))), sdt);
    _mm256_storeu_ps(y + c, _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot), w, _mm256_loadu_ps(y + c)));
  }
}
#endif

void lk_lora_shrink_q8(float *t, int64_t ldt, const void *xq, int64_t xstride, int64_t ntok, const void *a,
                       int64_t rank, int64_t cols) {
  if (ntok == 1) {  // bit-identical to lk_matmul's row (its contract), without the tiling set-up
    lk_matvec(LK_Q8_0, t, a, xq, cols, 0, rank);
    return;
  }
  lk_matmul(LK_Q8_0, t, ldt, a, xq, xstride, ntok, cols, 0, rank);
}

void lk_lora_expand_q8(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, const void *b,
                       int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale) {
  (void)rows;
  if (c1 <= c0 || ntok <= 0) return;
  for (int64_t i = 0; i < ntok; i++) {
    q8r_t p;
#if LK_X86
    const int isa = lk_isa();
    if (isa >= LK_ISA_AVX512) {
      q8r_prepare_avx512(t + i * ldt, rank, scale, &p);
      expand_q8_avx512(y + i * ldy, &p, b, rank, c0, c1);
      continue;
    }
    q8r_prepare(t + i * ldt, rank, scale, &p);
    if (isa >= LK_ISA_AVX2) {
      expand_q8_avx2(y + i * ldy, &p, b, rank, c0, c1);
      continue;
    }
#else
    q8r_prepare(t + i * ldt, rank, scale, &p);
#endif
    expand_q8_scalar(y + i * ldy, &p, b, rank, c0, c1);
  }
}

// ---- Q8 A prepacked ------------------------------------------------------------------------
// A's rank rows would be rank short interleaved streams for a decoding row's shrink; prepacked
// as the AMX tiles of a Q8_0 matrix (lk_prepack: per 16-row tile, per 32-column block, a
// 576-byte record of 8 natural-order vectors of 16 rows x 4 bytes + 128 in the VNNI tile's lane
// order, row 4i + j in lane 4j + i, then the 16 scales as halves), the shrink reads one linear
// stream. AVX-512 hosts only (the packing is AVX-512 code); the packed copy is the only one.

enum { Q8R_REC = 576 };

int64_t lk_lora_a_q8_packed_bytes(int64_t rank, int64_t cols) {
#if LK_X86
  if (lk_isa() < LK_ISA_AVX512 || rank <= 0 || cols <= 0 || cols % QK != 0) return 0;
  return (rank + 15) / 16 * (cols / QK) * Q8R_REC;
#else
  (void)rank, (void)cols;
  return 0;
#endif
}

void lk_lora_pack_a_q8(const void *a, int64_t rank, int64_t cols, void *out) {
#if LK_X86
  // The CPU's own level, not the thread's: the size was asked for on another thread.
  if (lk_cpu_isa() >= LK_ISA_AVX512 && rank > 0 && cols > 0 && cols % QK == 0)
    lk_prepack(LK_Q8_0, a, rank, cols, out);
#else
  (void)a, (void)rank, (void)cols, (void)out;
#endif
}

/// Where row k's block b lives in the records: its record and its lane.
LK_INLINE const uint8_t *q8r_record(const void *apk, int64_t nb, int64_t k, int64_t b, int *lane) {
  const int rr = (int)(k % 16);
  *lane = 4 * (rr % 4) + rr / 4;
  return (const uint8_t *)apk + ((k / 16) * nb + b) * Q8R_REC;
}

void lk_lora_unpack_a_q8(const void *apk, int64_t rank, int64_t cols, void *a) {
  const int64_t nb = cols / QK;
  for (int64_t k = 0; k < rank; k++)
    for (int64_t b = 0; b < nb; b++) {
      int lane;
      const uint8_t *rec = q8r_record(apk, nb, k, b, &lane);
      block_q8_0 *blk = (block_q8_0 *)a + k * nb + b;
      memcpy(&blk->d, rec + 512 + 2 * lane, 2);
      for (int e = 0; e < QK; e++) blk->qs[e] = (int8_t)((int)rec[vnni_at(e, lane)] - 128);
    }
}

/// The same integers and float steps as the AVX-512 kernel, one row and lane at a time (for
/// threads pinned below AVX-512 after the packing).
static void shrink_q8_packed_scalar(float *t, const void *xq, const void *apk, int64_t rank, int64_t cols) {
  const int64_t nb = cols / QK;
  for (int64_t kb0 = 0; kb0 < nb; kb0 += 64) {
    const int64_t nkb = nb - kb0 < 64 ? nb - kb0 : 64;
    for (int64_t k = 0; k < rank; k++) {
      float acc = 0;
      for (int64_t b = kb0; b < kb0 + nkb; b++) {
        const block_q8_0 *x = (const block_q8_0 *)xq + b;
        int lane;
        const uint8_t *rec = q8r_record(apk, nb, k, b, &lane);
        int32_t dot = 0;
        for (int e = 0; e < QK; e++) dot += ((int32_t)rec[vnni_at(e, lane)] - 128) * x->qs[e];
        uint16_t h;
        memcpy(&h, rec + 512 + 2 * lane, 2);
        acc = fmaf((float)dot * lk_h2f(h), lk_h2f(x->d), acc);
      }
      t[k] = kb0 == 0 ? acc : t[k] + acc;
    }
  }
}

void lk_lora_shrink_q8_packed(float *t, int64_t ldt, const void *xq, int64_t xstride, int64_t ntok, const void *apk,
                              int64_t rank, int64_t cols) {
#if LK_X86
  if (lk_isa() >= LK_ISA_AVX512) {
    lk_lora_shrink_q8_packed_avx512(t, ldt, xq, xstride, ntok, apk, rank, cols);
    return;
  }
#endif
  for (int64_t i = 0; i < ntok; i++)
    shrink_q8_packed_scalar(t + i * ldt, (const uint8_t *)xq + i * xstride, apk, rank, cols);
}

void lk_lora_shrink(float *t, int64_t ldt, const float *x, int64_t ldx, int64_t ntok, int type, const void *a,
                    int64_t rank, int64_t cols) {
#if LK_X86
  const int isa = lk_isa();
  if (isa >= LK_ISA_AVX512) {
    shrink_avx512(t, ldt, x, ldx, ntok, type, a, rank, cols);
    return;
  }
  if (isa >= LK_ISA_AVX2) {
    shrink_avx2(t, ldt, x, ldx, ntok, type, a, rank, cols);
    return;
  }
#endif
  shrink_scalar(t, ldt, x, ldx, ntok, type, a, rank, cols);
}

void lk_lora_expand(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, int type, const void *bt,
                    int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale) {
#if LK_X86
  const int isa = lk_isa();
  if (isa >= LK_ISA_AVX512) {
    expand_avx512(y, ldy, t, ldt, ntok, type, bt, rank, rows, c0, c1, scale);
    return;
  }
  if (isa >= LK_ISA_AVX2) {
    expand_avx2(y, ldy, t, ldt, ntok, type, bt, rank, rows, c0, c1, scale);
    return;
  }
#endif
  expand_scalar(y, ldy, t, ldt, ntok, type, bt, rank, rows, c0, c1, scale);
}

