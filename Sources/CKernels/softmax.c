#include "lk_softmax.h"

#include <math.h>

/// exp(x) for x <= 0 (x >= -87.3 kept; smaller underflows to 0): 2^k · p(r) with r in
/// [-ln2/2, ln2/2] and a degree-6 polynomial; branch-free so loops over it vectorize.
static inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float log2e = 1.44269504088896341f;
  float k = __builtin_roundf(x * log2e);
  float r = x - k * 0.693145751953125f - k * 1.428606765330187045e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  union {
    float f;
    int32_t i;
  } s;
  s.i = ((int32_t)k + 127) << 23;
  return p * s.f;
}

float lk_logsumexp(const float *x, int64_t n) {
  if (n <= 0) return -INFINITY;
  float mx = x[0];
  for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (!isfinite(mx)) return mx;
  float sum[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) sum[j] += exp_nonpositive(x[i + j] - mx);
  float s = 0;
  for (; i < n; i++) s += exp_nonpositive(x[i] - mx);
  for (int j = 0; j < 8; j++) s += sum[j];
  return mx + logf(s);
}
