// One query head's attention over cached keys/values: scores, softmax, weighted sum of values,
// in one pass over K and one over V, with no calls per position.
#include "internal.h"
#include "lk_attention.h"

/// Element i of a cache row: float, or IEEE half (f16 != 0).
static inline float kv_at(const void *p, int64_t i, int f16) {
  return f16 ? lk_h2f(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

static void attn_scalar(float *out, const float *q, const void *K, const void *V, int64_t ld, int64_t len,
                        int64_t hd, float scale, float *s, int f16) {
  const int64_t es = f16 ? 2 : 4;  // bytes per element
  float mx = -INFINITY;
  for (int64_t t = 0; t < len; t++) {
    const char *k = (const char *)K + t * ld * es;
    float d = 0;
    for (int64_t i = 0; i < hd; i++) d += q[i] * kv_at(k, i, f16);
    d *= scale;
    s[t] = d;
    if (d > mx) mx = d;
  }
  float sum = 0;
  for (int64_t t = 0; t < len; t++) {
    s[t] = expf(s[t] - mx);
    sum += s[t];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < hd; i++) out[i] = 0;
  for (int64_t t = 0; t < len; t++) {
    const float p = s[t] * inv;
    const char *v = (const char *)V + t * ld * es;
    for (int64_t i = 0; i < hd; i++) out[i] += p * kv_at(v, i, f16);
  }
}

#if LK_X86
enum { PF_ROWS = 8 };  // attention: rows of K / V asked for ahead of their use

/// exp(x) of 16 lanes, x <= 0: lk_exp_nonpositive's polynomial, the power of two by scalef.
LK_AVX512 LK_INLINE __m512 exp512_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, k);
}

/// Sums of 16 vectors in the lanes of one: lane 4k + g = the sum of a[4g + k].
LK_AVX512 LK_INLINE __m512 hsum16x16(const __m512 a[16]) {
  __m512 x[8], y[4], z[2];
  for (int p = 0; p < 8; p++)  // lanes 0-7: a[2p]'s halves summed, 8-15: a[2p + 1]'s
    x[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0x44),
                         _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0xEE));
  for (int p = 0; p < 4; p++)  // 128-bit lane k: 4 partial sums of the k-th of 4 vectors
    y[p] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * p], x[2 * p + 1], 0x88),
                         _mm512_shuffle_f32x4(x[2 * p], x[2 * p + 1], 0xDD));
  for (int p = 0; p < 2; p++)
    z[p] = _mm512_add_ps(_mm512_shuffle_ps(y[2 * p], y[2 * p + 1], 0x44), _mm512_shuffle_ps(y[2 * p], y[2 * p + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], 0x88), _mm512_shuffle_ps(z[0], z[1], 0xDD));
}

/// hd = 16 · nv, at most 256; cache rows of floats, or halves (f16). Inlined with a constant nv.
/// Scores 16 positions at a time (16 accumulators, summed across lanes in one shuffle tree),
/// the exponentials 16 at a time, the values with two sets of accumulators (even and odd
/// positions) so that the FMA chains do not wait on each other.
LK_AVX512 LK_INLINE void attn_avx512_nv(float *out, const float *q, const void *Kp, const void *Vp, int64_t ld,
                                        int64_t len, int nv, float scale, float *s, int f16) {
  const float *K = Kp, *V = Vp;
  const uint16_t *Kh = Kp, *Vh = Vp;
#define KV_LD16(F, H, off) \
  (f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((H) + (off)))) : _mm512_loadu_ps((F) + (off)))
  __m512 qv[16];
  for (int j = 0; j < nv; j++) qv[j] = _mm512_mul_ps(_mm512_loadu_ps(q + 16 * j), _mm512_set1_ps(scale));
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t t0 = 0; t0 < len; t0 += 16) {
    const int n = len - t0 < 16 ? (int)(len - t0) : 16;
    // Slot i holds position t0 + 4 (i % 4) + i / 4 (hsum16x16's order); past the end: 0.
    __m512 acc[16];
    if (n == 16) {
      const int64_t k0 = t0 * ld;
#pragma clang loop unroll(full)
      for (int i = 0; i < 16; i++) acc[i] = _mm512_mul_ps(qv[0], KV_LD16(K, Kh, k0 + (4 * (i % 4) + i / 4) * ld));
      for (int j = 1; j < nv; j++)  // 16 independent chains
#pragma clang loop unroll(full)
        for (int i = 0; i < 16; i++)
          acc[i] = _mm512_fmadd_ps(qv[j], KV_LD16(K, Kh, k0 + (4 * (i % 4) + i / 4) * ld + 16 * j), acc[i]);
    } else {
      for (int i = 0; i < 16; i++) {
        const int p = 4 * (i % 4) + i / 4;
        acc[i] = _mm512_setzero_ps();
        if (p >= n) continue;
        const int64_t k = (t0 + p) * ld;
        for (int j = 0; j < nv; j++) acc[i] = _mm512_fmadd_ps(qv[j], KV_LD16(K, Kh, k + 16 * j), acc[i]);
      }
    }
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    const __m512 d = hsum16x16(acc);
    _mm512_mask_storeu_ps(s + t0, m, d);
    mx = _mm512_mask_max_ps(mx, m, mx, d);
  }
  const __m512 mxv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t t0 = 0; t0 < len; t0 += 16) {
    const int n = len - t0 < 16 ? (int)(len - t0) : 16;
    const __mmask16 m = (__mmask16)((1u << n) - 1);
    const __m512 e = exp512_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + t0), mxv));
    _mm512_mask_storeu_ps(s + t0, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  __m512 o0[16], o1[16];
  for (int j = 0; j < nv; j++) o0[j] = o1[j] = _mm512_setzero_ps();
  int64_t t = 0;
  for (; t + 2 <= len; t += 2) {
    const __m512 p0 = _mm512_set1_ps(s[t]), p1 = _mm512_set1_ps(s[t + 1]);
    const int64_t v = t * ld;
    for (int j = 0; j < nv; j++) {
      o0[j] = _mm512_fmadd_ps(p0, KV_LD16(V, Vh, v + 16 * j), o0[j]);
      o1[j] = _mm512_fmadd_ps(p1, KV_LD16(V, Vh, v + ld + 16 * j), o1[j]);
    }
  }
  if (t < len) {
    const __m512 p0 = _mm512_set1_ps(s[t]);
    for (int j = 0; j < nv; j++) o0[j] = _mm512_fmadd_ps(p0, KV_LD16(V, Vh, t * ld + 16 * j), o0[j]);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));  // normalized once, at the end
  for (int j = 0; j < nv; j++) _mm512_storeu_ps(out + 16 * j, _mm512_mul_ps(_mm512_add_ps(o0[j], o1[j]), inv));
#undef KV_LD16
}

/// NAME: the kernel NAME##_nv (TARGET, LANES floats a vector) for hd a multiple of LANES, at most
/// 256, through instances with a constant nv for the usual head sizes 64 and 128 (h: halves).
#define ATTN_KERNELS(TARGET, NAME, LANES)                                                                       \
  ATTN_INST(TARGET, NAME, NAME##_64, 64 / LANES, 0)                                                            \
  ATTN_INST(TARGET, NAME, NAME##_128, 128 / LANES, 0)                                                          \
  ATTN_INST(TARGET, NAME, NAME##_64h, 64 / LANES, 1)                                                           \
  ATTN_INST(TARGET, NAME, NAME##_128h, 128 / LANES, 1)                                                         \
  TARGET static void NAME(float *out, const float *q, const void *K, const void *V, int64_t ld, int64_t len,   \
                          int64_t hd, float scale, float *s, int f16) {                                        \
    if (hd == 64) (f16 ? NAME##_64h : NAME##_64)(out, q, K, V, ld, len, scale, s);                             \
    else if (hd == 128) (f16 ? NAME##_128h : NAME##_128)(out, q, K, V, ld, len, scale, s);                     \
    else if (f16) NAME##_nv(out, q, K, V, ld, len, (int)(hd / LANES), scale, s, 1);                            \
    else NAME##_nv(out, q, K, V, ld, len, (int)(hd / LANES), scale, s, 0);                                     \
  }
#define ATTN_INST(TARGET, NAME, INST, NV, F16)                                                                   \
  TARGET static void INST(float *out, const float *q, const void *K, const void *V, int64_t ld, int64_t len,   \
                          float scale, float *s) {                                                             \
    NAME##_nv(out, q, K, V, ld, len, NV, scale, s, F16);                                                       \
  }
ATTN_KERNELS(LK_AVX512, attn_avx512, 16)

LK_AVX2 static inline float hsum256(__m256 v) {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

/// hd = 8 · nv, at most 256. Inlined with a constant nv for the usual head sizes, so the output
/// accumulators live in registers rather than going through memory at every position.
LK_AVX2 LK_INLINE void attn_avx2_nv(float *out, const float *q, const void *Kp, const void *Vp, int64_t ld,
                                    int64_t len, int nv, float scale, float *s, int f16) {
  // Cache rows are floats, or halves (f16): element offsets below, loads through KV_LD8.
  const float *K = Kp, *V = Vp;
  const uint16_t *Kh = Kp, *Vh = Vp;
#define KV_LD8(F, H, off) (f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((H) + (off)))) : _mm256_loadu_ps((F) + (off)))
#define KV_ADDR(F, H, off) (f16 ? (const char *)((H) + (off)) : (const char *)((F) + (off)))
  __m256 qv[32];
  for (int j = 0; j < nv; j++) qv[j] = _mm256_mul_ps(_mm256_loadu_ps(q + 8 * j), _mm256_set1_ps(scale));
  __m128 mx4 = _mm_set1_ps(-INFINITY);
  int64_t t = 0;
  // One prefetch per line of a row (64 bytes: 16 floats, 32 halves; rows are a line apart or more).
  const int pstep = f16 ? 4 : 2;
  // Four positions at a time: four independent FMA chains instead of one (latency bound), and
  // one reduction of all four sums.
  for (; t + 4 <= len; t += 4) {
    const int64_t k = t * ld;
    // A head reads hd of every ld elements: a strided stream the hardware prefetchers follow
    // poorly, so ask for the rows PF_ROWS ahead (prefetches past the end are harmless hints).
    for (int r = 0; r < 4; r++)
      for (int j = 0; j < nv; j += pstep) _mm_prefetch(KV_ADDR(K, Kh, k + (PF_ROWS + r) * ld + 8 * j), _MM_HINT_T0);
    __m256 a0 = _mm256_mul_ps(qv[0], KV_LD8(K, Kh, k)), a1 = _mm256_mul_ps(qv[0], KV_LD8(K, Kh, k + ld));
    __m256 a2 = _mm256_mul_ps(qv[0], KV_LD8(K, Kh, k + 2 * ld)), a3 = _mm256_mul_ps(qv[0], KV_LD8(K, Kh, k + 3 * ld));
    for (int j = 1; j < nv; j++) {
      a0 = _mm256_fmadd_ps(qv[j], KV_LD8(K, Kh, k + 8 * j), a0);
      a1 = _mm256_fmadd_ps(qv[j], KV_LD8(K, Kh, k + ld + 8 * j), a1);
      a2 = _mm256_fmadd_ps(qv[j], KV_LD8(K, Kh, k + 2 * ld + 8 * j), a2);
      a3 = _mm256_fmadd_ps(qv[j], KV_LD8(K, Kh, k + 3 * ld + 8 * j), a3);
    }
    // The four positions' sums at once: [d0 d1 d2 d3].
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    const __m128 d = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    _mm_storeu_ps(s + t, d);
    mx4 = _mm_max_ps(mx4, d);
  }
  mx4 = _mm_max_ps(mx4, _mm_movehl_ps(mx4, mx4));
  mx4 = _mm_max_ss(mx4, _mm_movehdup_ps(mx4));
  float mx = _mm_cvtss_f32(mx4);
  for (; t < len; t++) {
    const int64_t k = t * ld;
    __m256 acc = _mm256_mul_ps(qv[0], KV_LD8(K, Kh, k));
    for (int j = 1; j < nv; j++) acc = _mm256_fmadd_ps(qv[j], KV_LD8(K, Kh, k + 8 * j), acc);
    const float d = hsum256(acc);
    s[t] = d;
    mx = d > mx ? d : mx;
  }
  // Softmax numerators 8 at a time (the polynomial exp; every argument is <= 0).
  float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  t = 0;
  for (; t + 8 <= len; t += 8)
    for (int j = 0; j < 8; j++) {
      const float e = lk_exp_nonpositive(s[t + j] - mx);
      s[t + j] = e;
      part[j] += e;
    }
  float sum = 0;
  for (; t < len; t++) {
    s[t] = lk_exp_nonpositive(s[t] - mx);
    sum += s[t];
  }
  for (int j = 0; j < 8; j++) sum += part[j];
  __m256 o[32];
  for (int j = 0; j < nv; j++) o[j] = _mm256_setzero_ps();
  for (t = 0; t < len; t++) {
    const __m256 p = _mm256_set1_ps(s[t]);
    const int64_t v = t * ld;
    for (int j = 0; j < nv; j += pstep) _mm_prefetch(KV_ADDR(V, Vh, v + PF_ROWS * ld + 8 * j), _MM_HINT_T0);
    for (int j = 0; j < nv; j++) o[j] = _mm256_fmadd_ps(p, KV_LD8(V, Vh, v + 8 * j), o[j]);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / sum);  // normalized once, at the end
  for (int j = 0; j < nv; j++) _mm256_storeu_ps(out + 8 * j, _mm256_mul_ps(o[j], inv));
#undef KV_LD8
#undef KV_ADDR
}
ATTN_KERNELS(LK_AVX2, attn_avx2, 8)
#endif

/// The best kernel of the ISA level for the head size; f16: halves in the cache.
static void attn_head(float *out, const float *q, const void *K, const void *V, int64_t ld, int64_t len, int64_t hd,
                      float scale, float *scores, int f16) {
#if LK_X86
  const int isa = lk_isa();
  if (isa >= LK_ISA_AVX512 && hd % 16 == 0 && hd <= 256) {
    attn_avx512(out, q, K, V, ld, len, hd, scale, scores, f16);
    return;
  }
  if (isa >= LK_ISA_AVX2 && hd % 8 == 0 && hd <= 256) {
    attn_avx2(out, q, K, V, ld, len, hd, scale, scores, f16);
    return;
  }
#endif
  attn_scalar(out, q, K, V, ld, len, hd, scale, scores, f16);
}

void lk_attention_head(float *out, const float *q, const float *K, const float *V, int64_t ld, int64_t len,
                       int64_t hd, float scale, float *scores) {
  attn_head(out, q, K, V, ld, len, hd, scale, scores, 0);
}

void lk_attention_head_f16(float *out, const float *q, const uint16_t *K, const uint16_t *V, int64_t ld, int64_t len,
                           int64_t hd, float scale, float *scores) {
  attn_head(out, q, K, V, ld, len, hd, scale, scores, 1);
}
