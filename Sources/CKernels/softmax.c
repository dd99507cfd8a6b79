#include "lk_softmax.h"
#include "internal.h"

#include <math.h>

/// log Σ exp(x[i]) with L running maxima and sums (L a constant: the x86 builds vectorize the
/// loops, roundf and all, which the baseline x86-64 build cannot).
static inline __attribute__((always_inline)) float logsumexp(const float *x, int64_t n, const int L) {
  if (n <= 0) return -INFINITY;
  float mx = x[0];
  int64_t i = 1;
  if (n >= 2 * L) {  // L running maxima (max is exact: the same result in any order)
    float m[16];
    for (int j = 0; j < L; j++) m[j] = x[j];
    for (i = L; i + L <= n; i += L)
      for (int j = 0; j < L; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (int j = 0; j < L; j++) mx = m[j] > mx ? m[j] : mx;
  }
  for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (!isfinite(mx)) return mx;
  float sum[16];
  for (int j = 0; j < L; j++) sum[j] = 0;
  i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; j++) sum[j] += lk_exp_nonpositive(x[i + j] - mx);
  float s = 0;
  for (; i < n; i++) s += lk_exp_nonpositive(x[i] - mx);
  for (int j = 0; j < L; j++) s += sum[j];
  return mx + logf(s);
}

#if LK_X86
LK_AVX2 static float logsumexp_avx2(const float *x, int64_t n) { return logsumexp(x, n, 8); }
LK_AVX512 static float logsumexp_avx512(const float *x, int64_t n) { return logsumexp(x, n, 16); }
#endif

float lk_logsumexp(const float *x, int64_t n) {
#if LK_X86
  const int isa = lk_cur_isa();
  if (isa >= LK_ISA_AVX512) return logsumexp_avx512(x, n);
  if (isa >= LK_ISA_AVX2) return logsumexp_avx2(x, n);
#endif
  return logsumexp(x, n, 8);
}

// ---- argmax and the top-k scan's filter --------------------------------------------------------
static int64_t first_above_scalar(const float *x, int64_t i, int64_t n, float thr) {
  while (i < n && x[i] <= thr) i++;
  return i;
}

/// The first index holding m (m not NaN), from i on; n if none.
static int64_t first_equal_scalar(const float *x, int64_t i, int64_t n, float m) {
  while (i < n && !(x[i] == m)) i++;
  return i;
}

static int64_t argmax_scalar(const float *x, int64_t n) {
  int64_t best = 0;
  float bv = x[0];
  for (int64_t i = 1; i < n; i++)
    if (x[i] > bv) bv = x[i], best = i;
  return best;
}

#if LK_X86
LK_AVX512 static int64_t first_above_avx512(const float *x, int64_t i, int64_t n, float thr) {
  const __m512 t = _mm512_set1_ps(thr);
  for (; i + 16 <= n; i += 16) {
    const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), t, _CMP_NLE_UQ);
    if (m) return i + __builtin_ctz(m);
  }
  return first_above_scalar(x, i, n, thr);
}

/// The largest non-NaN value (x[0] not NaN), then its first index.
LK_AVX512 static int64_t argmax_avx512(const float *x, int64_t n) {
  if (x[0] != x[0]) return 0;
  __m512 m0 = _mm512_set1_ps(x[0]), m1 = m0;
  int64_t i = 0;
  // max_ps(a, b) gives b when a is NaN: NaNs in x never enter the running maxima
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
    m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
  }
  float m = _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  const __m512 mv = _mm512_set1_ps(m);
  for (i = 0; i + 16 <= n; i += 16) {
    const __mmask16 e = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), mv, _CMP_EQ_OQ);
    if (e) return i + __builtin_ctz(e);
  }
  return first_equal_scalar(x, i, n, m);
}

LK_AVX2 static int64_t first_above_avx2(const float *x, int64_t i, int64_t n, float thr) {
  const __m256 t = _mm256_set1_ps(thr);
  for (; i + 8 <= n; i += 8) {
    const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), t, _CMP_NLE_UQ));
    if (m) return i + __builtin_ctz((unsigned)m);
  }
  return first_above_scalar(x, i, n, thr);
}

LK_AVX2 static int64_t argmax_avx2(const float *x, int64_t n) {
  if (x[0] != x[0]) return 0;
  __m256 m0 = _mm256_set1_ps(x[0]), m1 = m0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
  }
  float lanes[8];
  _mm256_storeu_ps(lanes, _mm256_max_ps(m0, m1));
  float m = lanes[0];
  for (int j = 1; j < 8; j++) m = lanes[j] > m ? lanes[j] : m;
  for (; i < n; i++) m = x[i] > m ? x[i] : m;
  const __m256 mv = _mm256_set1_ps(m);
  for (i = 0; i + 8 <= n; i += 8) {
    const int e = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), mv, _CMP_EQ_OQ));
    if (e) return i + __builtin_ctz((unsigned)e);
  }
  return first_equal_scalar(x, i, n, m);
}
#endif

int64_t lk_argmax(const float *x, int64_t n) {
#if LK_X86
  const int isa = lk_cur_isa();
  if (isa >= LK_ISA_AVX512) return argmax_avx512(x, n);
  if (isa >= LK_ISA_AVX2) return argmax_avx2(x, n);
#endif
  return argmax_scalar(x, n);
}

int64_t lk_first_above(const float *x, int64_t i, int64_t n, float thr) {
#if LK_X86
  const int isa = lk_cur_isa();
  if (isa >= LK_ISA_AVX512) return first_above_avx512(x, i, n, thr);
  if (isa >= LK_ISA_AVX2) return first_above_avx2(x, i, n, thr);
#endif
  return first_above_scalar(x, i, n, thr);
}
