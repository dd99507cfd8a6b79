#include "lk_softmax.h"
#include "internal.h"

#include <math.h>

/// log Σ exp(x[i]), 8 running sums; the AVX2 build of the same code vectorizes it (roundf and
/// all), which the baseline x86-64 build cannot.
static inline __attribute__((always_inline)) float logsumexp(const float *x, int64_t n) {
  if (n <= 0) return -INFINITY;
  float mx = x[0];
  int64_t i = 1;
  if (n >= 16) {  // 8 running maxima (max is exact: the same result in any order)
    float m[8];
    for (int j = 0; j < 8; j++) m[j] = x[j];
    for (i = 8; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; j++) m[j] = x[i + j] > m[j] ? x[i + j] : m[j];
    for (int j = 0; j < 8; j++) mx = m[j] > mx ? m[j] : mx;
  }
  for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (!isfinite(mx)) return mx;
  float sum[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) sum[j] += lk_exp_nonpositive(x[i + j] - mx);
  float s = 0;
  for (; i < n; i++) s += lk_exp_nonpositive(x[i] - mx);
  for (int j = 0; j < 8; j++) s += sum[j];
  return mx + logf(s);
}

#if LK_X86
LK_AVX2 static float logsumexp_avx2(const float *x, int64_t n) { return logsumexp(x, n); }
#endif

float lk_logsumexp(const float *x, int64_t n) {
#if LK_X86
  if (lk_cur_isa() >= LK_ISA_AVX2) return logsumexp_avx2(x, n);
#endif
  return logsumexp(x, n);
}
