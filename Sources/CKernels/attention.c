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

/// hd a multiple of 16, at most 256.
LK_AVX512 static void attn_avx512(float *out, const float *q, const float *K, const float *V, int64_t ld,
                                  int64_t len, int64_t hd, float scale, float *s) {
  const int nv = (int)(hd / 16);
  __m512 qv[16];
  for (int j = 0; j < nv; j++) qv[j] = _mm512_mul_ps(_mm512_loadu_ps(q + 16 * j), _mm512_set1_ps(scale));
  float mx = -INFINITY;
  for (int64_t t = 0; t < len; t++) {
    const float *k = K + t * ld;
    __m512 acc = _mm512_mul_ps(qv[0], _mm512_loadu_ps(k));
    for (int j = 1; j < nv; j++) acc = _mm512_fmadd_ps(qv[j], _mm512_loadu_ps(k + 16 * j), acc);
    const float d = _mm512_reduce_add_ps(acc);
    s[t] = d;
    mx = d > mx ? d : mx;
  }
  float sum = 0;
  for (int64_t t = 0; t < len; t++) {
    s[t] = expf(s[t] - mx);
    sum += s[t];
  }
  const float inv = 1.0f / sum;
  __m512 o[16];
  for (int j = 0; j < nv; j++) o[j] = _mm512_setzero_ps();
  for (int64_t t = 0; t < len; t++) {
    const __m512 p = _mm512_set1_ps(s[t] * inv);
    const float *v = V + t * ld;
    for (int j = 0; j < nv; j++) o[j] = _mm512_fmadd_ps(p, _mm512_loadu_ps(v + 16 * j), o[j]);
  }
  for (int j = 0; j < nv; j++) _mm512_storeu_ps(out + 16 * j, o[j]);
}

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
#define ATTN_AVX2(NAME, NV, F16)                                                                             \
  LK_AVX2 static void NAME(float *out, const float *q, const void *K, const void *V, int64_t ld, int64_t len, \
                           float scale, float *s) {                                                           \
    attn_avx2_nv(out, q, K, V, ld, len, NV, scale, s, F16);                                                   \
  }
ATTN_AVX2(attn_avx2_64, 8, 0)
ATTN_AVX2(attn_avx2_128, 16, 0)
ATTN_AVX2(attn_avx2_64h, 8, 1)
ATTN_AVX2(attn_avx2_128h, 16, 1)

/// hd a multiple of 8, at most 256; f16: halves in the cache.
LK_AVX2 static void attn_avx2(float *out, const float *q, const void *K, const void *V, int64_t ld, int64_t len,
                              int64_t hd, float scale, float *s, int f16) {
  if (hd == 64) (f16 ? attn_avx2_64h : attn_avx2_64)(out, q, K, V, ld, len, scale, s);
  else if (hd == 128) (f16 ? attn_avx2_128h : attn_avx2_128)(out, q, K, V, ld, len, scale, s);
  else if (f16) attn_avx2_nv(out, q, K, V, ld, len, (int)(hd / 8), scale, s, 1);
  else attn_avx2_nv(out, q, K, V, ld, len, (int)(hd / 8), scale, s, 0);
}
#endif

void lk_attention_head(float *out, const float *q, const float *K, const float *V, int64_t ld, int64_t len,
                       int64_t hd, float scale, float *scores) {
#if LK_X86
  const int isa = lk_isa();
  if (isa >= LK_ISA_AVX512 && hd % 16 == 0 && hd <= 256) {
    attn_avx512(out, q, K, V, ld, len, hd, scale, scores);
    return;
  }
  if (isa >= LK_ISA_AVX2 && hd % 8 == 0 && hd <= 256) {
    attn_avx2(out, q, K, V, ld, len, hd, scale, scores, 0);
    return;
  }
#endif
  attn_scalar(out, q, K, V, ld, len, hd, scale, scores, 0);
}

void lk_attention_head_f16(float *out, const float *q, const uint16_t *K, const uint16_t *V, int64_t ld, int64_t len,
                           int64_t hd, float scale, float *scores) {
#if LK_X86
  // The AVX2 kernel is also the AVX-512 machines' (F16C conversions on the loads).
  if (lk_isa() >= LK_ISA_AVX2 && hd % 8 == 0 && hd <= 256) {
    attn_avx2(out, q, K, V, ld, len, hd, scale, scores, 1);
    return;
  }
#endif
  attn_scalar(out, q, K, V, ld, len, hd, scale, scores, 1);
}
