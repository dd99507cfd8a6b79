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

// ---- Q8_0 factors -----------------------------------------------------------------------
// ggml's Q8_0 blocks (f16 scale, 32 int8): a quarter of F32's bytes, about half of F16's.
// Bᵀ is stored in panels: for each block of 32 columns, its rank blocks one after another, so
// the expand streams the factor front to back (one stream the prefetchers follow, not rank
// strided ones) and a panel (rank × 34 bytes) stays in L1 across the rows of t.

static void expand_q8_scalar(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, const void *bt,
                             int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale) {
  const block_q8_0 *B = bt;
  (void)rows;
  for (int64_t c = c0; c < c1; c += QK)
    for (int64_t i = 0; i < ntok; i++) {
      float *yi = y + i * ldy + c;
      for (int64_t k = 0; k < rank; k++) {
        const block_q8_0 *blk = B + (c / QK) * rank + k;
        const float w = scale * t[i * ldt + k] * lk_h2f(blk->d);
        for (int j = 0; j < QK; j++) yi[j] += w * (float)blk->qs[j];
      }
    }
}

#if LK_X86
/// Tokens of one panel at a time (each factor block is converted once for all of them).
enum { EXPAND_NT = 4 };
/// Panels prefetched ahead. A decoding row's factors come from memory (a step streams every
/// adapter's factors once, and the base weights in between), each call only a few KB, too short
/// for the hardware prefetcher: 16 adapters' expands of one step took 5.3 ms cold without, 3.3
/// with (one thread, 2026-12-05).
enum { EXPAND_PF = 4 };

LK_AVX512 static void expand_q8_avx512(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, const void *bt,
                                       int64_t rank, int64_t c0, int64_t c1, float scale) {
  const block_q8_0 *B = bt;
  const int64_t panel = rank * (int64_t)sizeof(block_q8_0);
  const char *end = (const char *)(B + (c1 / QK) * rank);
  lk_prefetch_range(B + (c0 / QK) * rank, EXPAND_PF * panel, end);
  for (int64_t c = c0; c < c1; c += QK) {
    lk_prefetch_range(B + (c / QK + EXPAND_PF) * rank, panel, end);
    for (int64_t i0 = 0; i0 < ntok; i0 += EXPAND_NT) {
      const int nt = ntok - i0 < EXPAND_NT ? (int)(ntok - i0) : EXPAND_NT;
      __m512 a[EXPAND_NT][2];
      for (int i = 0; i < nt; i++) {
        a[i][0] = _mm512_loadu_ps(y + (i0 + i) * ldy + c);
        a[i][1] = _mm512_loadu_ps(y + (i0 + i) * ldy + c + 16);
      }
      for (int64_t k = 0; k < rank; k++) {
        const block_q8_0 *blk = B + (c / QK) * rank + k;
        const float d = _cvtsh_ss(blk->d);
        const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)blk->qs)));
        const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk->qs + 16))));
        for (int i = 0; i < nt; i++) {  // the AVX2 kernel's float operations, element by element
          const __m512 w = _mm512_set1_ps(scale * t[(i0 + i) * ldt + k] * d);
          a[i][0] = _mm512_fmadd_ps(w, q0, a[i][0]);
          a[i][1] = _mm512_fmadd_ps(w, q1, a[i][1]);
        }
      }
      for (int i = 0; i < nt; i++) {
        _mm512_storeu_ps(y + (i0 + i) * ldy + c, a[i][0]);
        _mm512_storeu_ps(y + (i0 + i) * ldy + c + 16, a[i][1]);
      }
    }
  }
}

LK_AVX2 static void expand_q8_avx2(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, const void *bt,
                                   int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale) {
  const block_q8_0 *B = bt;
  (void)rows;
  for (int64_t c = c0; c < c1; c += QK)
    for (int64_t i = 0; i < ntok; i++) {
      float *yi = y + i * ldy + c;
      const float *ti = t + i * ldt;
      __m256 a0 = _mm256_loadu_ps(yi), a1 = _mm256_loadu_ps(yi + 8);
      __m256 a2 = _mm256_loadu_ps(yi + 16), a3 = _mm256_loadu_ps(yi + 24);
      for (int64_t k = 0; k < rank; k++) {
        const block_q8_0 *blk = B + (c / QK) * rank + k;
        const __m256 w = _mm256_set1_ps(scale * ti[k] * _cvtsh_ss(blk->d));
        const __m256i q = _mm256_loadu_si256((const __m256i *)blk->qs);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        a0 = _mm256_fmadd_ps(w, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), a0);
        a1 = _mm256_fmadd_ps(w, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), a1);
        a2 = _mm256_fmadd_ps(w, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), a2);
        a3 = _mm256_fmadd_ps(w, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), a3);
      }
      _mm256_storeu_ps(yi, a0);
      _mm256_storeu_ps(yi + 8, a1);
      _mm256_storeu_ps(yi + 16, a2);
      _mm256_storeu_ps(yi + 24, a3);
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

void lk_lora_pack_bt_q8(const float *b, int64_t rows, int64_t rank, void *dst) {
  block_q8_0 *out = dst;
  float col[QK];
  for (int64_t c = 0; c < rows / QK; c++)
    for (int64_t k = 0; k < rank; k++) {
      for (int j = 0; j < QK; j++) col[j] = b[(c * QK + j) * rank + k];
      lk_quantize_act(LK_Q8_0, col, out + c * rank + k, QK);
    }
}

void lk_lora_expand_q8(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, const void *bt,
                       int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale) {
  if (c1 <= c0 || ntok <= 0) return;
#if LK_X86
  const int isa = lk_isa();
  if (isa >= LK_ISA_AVX512) {
    expand_q8_avx512(y, ldy, t, ldt, ntok, bt, rank, c0, c1, scale);
    return;
  }
  if (isa >= LK_ISA_AVX2) {
    expand_q8_avx2(y, ldy, t, ldt, ntok, bt, rank, rows, c0, c1, scale);
    return;
  }
#endif
  expand_q8_scalar(y, ldy, t, ldt, ntok, bt, rank, rows, c0, c1, scale);
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

