// Float helpers of the forward pass: RMS norm, SwiGLU, dot, axpy; AVX2 / AVX-512 with a scalar
// fallback, chosen by the ISA switch.
#include "internal.h"

// ---- scalar --------------------------------------------------------------------------------
static float dot_scalar(const float *a, const float *b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

static void rmsnorm_scalar(float *out, const float *x, const float *w, int64_t n, float eps) {
  float ss = dot_scalar(x, x, n);
  float scale = 1.0f / sqrtf(ss / (float)n + eps);
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
}

static void swiglu_scalar(float *out, const float *g, const float *u, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void axpy_scalar(float *y, float a, const float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

#if LK_X86
// ---- AVX-512 -------------------------------------------------------------------------------
LK_AVX512 static float dot_avx512(const float *a, const float *b, int64_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s0);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

LK_AVX512 static void rmsnorm_avx512(float *out, const float *x, const float *w, int64_t n, float eps) {
  float ss = dot_avx512(x, x, n);
  __m512 scale = _mm512_set1_ps(1.0f / sqrtf(ss / (float)n + eps));
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), scale), _mm512_maskz_loadu_ps(m, w + i));
    _mm512_mask_storeu_ps(out + i, m, v);
  }
}

/// exp(x) for the SiLU: 2^(x·log2 e) with a degree-6 polynomial for 2^f, f in [-0.5, 0.5];
/// relative error ~1e-7, inputs clamped to [-87, 88].
LK_AVX512 LK_INLINE __m512 exp512(__m512 x) {
  x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
  __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
  __m512 k = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_sub_ps(t, k);
  __m512 p = _mm512_set1_ps(1.535336188319500e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339887440266574e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618437357674640e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550332471162809e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264791363012e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931472028550421e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

LK_AVX512 static void swiglu_avx512(float *out, const float *g, const float *u, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    __m512 gv = _mm512_maskz_loadu_ps(m, g + i);
    __m512 s = _mm512_div_ps(gv, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv))));
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
  }
}

LK_AVX512 static void axpy_avx512(float *y, float a, const float *x, int64_t n) {
  __m512 av = _mm512_set1_ps(a);
  for (int64_t i = 0; i < n; i += 16) {
    __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
  }
}

// ---- AVX2 ----------------------------------------------------------------------------------
LK_AVX2 LK_INLINE float hsum8o(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LK_AVX2 static float dot_avx2(const float *a, const float *b, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum8o(_mm256_add_ps(s0, s1));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

LK_AVX2 static void rmsnorm_avx2(float *out, const float *x, const float *w, int64_t n, float eps) {
  float ss = dot_avx2(x, x, n);
  float sc = 1.0f / sqrtf(ss / (float)n + eps);
  __m256 scale = _mm256_set1_ps(sc);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), scale), _mm256_loadu_ps(w + i)));
  for (; i < n; i++) out[i] = x[i] * sc * w[i];
}

LK_AVX2 LK_INLINE __m256 exp256(__m256 x) {
  x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
  __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
  __m256 k = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_sub_ps(t, k);
  __m256 p = _mm256_set1_ps(1.535336188319500e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.339887440266574e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.618437357674640e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.550332471162809e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.402264791363012e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.931472028550421e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

LK_AVX2 static void swiglu_avx2(float *out, const float *g, const float *u, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 gv = _mm256_loadu_ps(g + i);
    __m256 s = _mm256_div_ps(gv, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), gv))));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
  }
  for (; i < n; i++) out[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

LK_AVX2 static void axpy_avx2(float *y, float a, const float *x, int64_t n) {
  __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}
#endif

// ---- dispatch ------------------------------------------------------------------------------
void lk_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
#if LK_X86
  switch (lk_isa()) {
  case LK_ISA_AMX:
  case LK_ISA_AVX512: rmsnorm_avx512(out, x, w, n, eps); return;
  case LK_ISA_AVX2: rmsnorm_avx2(out, x, w, n, eps); return;
  }
#endif
  rmsnorm_scalar(out, x, w, n, eps);
}

void lk_swiglu(float *out, const float *gate, const float *up, int64_t n) {
#if LK_X86
  switch (lk_isa()) {
  case LK_ISA_AMX:
  case LK_ISA_AVX512: swiglu_avx512(out, gate, up, n); return;
  case LK_ISA_AVX2: swiglu_avx2(out, gate, up, n); return;
  }
#endif
  swiglu_scalar(out, gate, up, n);
}

float lk_dot_f32(const float *a, const float *b, int64_t n) {
#if LK_X86
  switch (lk_isa()) {
  case LK_ISA_AMX:
  case LK_ISA_AVX512: return dot_avx512(a, b, n);
  case LK_ISA_AVX2: return dot_avx2(a, b, n);
  }
#endif
  return dot_scalar(a, b, n);
}

void lk_axpy_f32(float *y, float a, const float *x, int64_t n) {
#if LK_X86
  switch (lk_isa()) {
  case LK_ISA_AMX:
  case LK_ISA_AVX512: axpy_avx512(y, a, x, n); return;
  case LK_ISA_AVX2: axpy_avx2(y, a, x, n); return;
  }
#endif
  axpy_scalar(y, a, x, n);
}
