// Internal declarations shared by the CKernels sources: ggml block layouts, fp16/bf16
// conversion, the ISA switch and the per-ISA kernel entry points.
#pragma once
#include "CKernels.h"
#include <stdatomic.h>
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define LK_X86 1
#include <immintrin.h>
#else
#define LK_X86 0
#endif

#define LK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define LK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c")))
#define LK_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512dq,avx2,fma,f16c,amx-tile,amx-int8")))
#define LK_INLINE static inline __attribute__((always_inline))

// ---- ggml block layouts (ggml-common.h) ------------------------------------------------
/// Asks for n bytes from p, not past end, into L2 (prefetcht1; only a hint, never a fault).
static inline void lk_prefetch_range(const void *p, int64_t n, const void *end) {
  const char *c = p, *e = end;
  for (int64_t o = 0; o < n && c + o < e; o += 64) __builtin_prefetch(c + o, 0, 2);
}

#define QK 32    // elements per Q4_0/Q4_1/Q8_0/Q8_1 block
#define QK_K 256 // elements per K-quant super-block

typedef struct { uint16_t d; uint8_t qs[QK / 2]; } block_q4_0;            // 18 bytes
typedef struct { uint16_t d, m; uint8_t qs[QK / 2]; } block_q4_1;         // 20 bytes
typedef struct { uint16_t d; int8_t qs[QK]; } block_q8_0;                 // 34 bytes
typedef struct { uint16_t d, s; int8_t qs[QK]; } block_q8_1;              // 36 bytes; s = d * sum(qs)
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; } block_q4_K;  // 144
typedef struct { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; } block_q6_K;  // 210
typedef struct { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; } block_q8_K;  // 292

_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1");
_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0");
_Static_assert(sizeof(block_q8_1) == 36, "block_q8_1");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K");
_Static_assert(sizeof(block_q8_K) == 292, "block_q8_K");

// ---- scalar fp16 / bf16 conversion (bit exact, round to nearest even) -------------------
LK_INLINE uint32_t lk_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
LK_INLINE float lk_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/// exp(x) for x <= 0 (x >= -87.3 kept; smaller underflows to 0): 2^k · p(r) with r in
/// [-ln2/2, ln2/2] and a degree-6 polynomial; branch-free so loops over it vectorize.
LK_INLINE float lk_exp_nonpositive(float x) {
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

LK_INLINE float lk_h2f(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0) {  // zero or subnormal: m * 2^-24, exact
    float v = (float)m * 0x1p-24f;
    return lk_u2f(lk_f2u(v) | sign);
  }
  if (e == 31) return lk_u2f(sign | 0x7f800000u | (m << 13));
  return lk_u2f(sign | ((e + 112) << 23) | (m << 13));
}

LK_INLINE uint16_t lk_f2h(float f) {
  uint32_t x = lk_f2u(f), sign = (x >> 16) & 0x8000;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return (uint16_t)(sign | (x > 0x7f800000u ? 0x7e00 : 0x7c00));
  if (x < 0x38800000u) {  // below 2^-14: half subnormal or zero; scale to units of 2^-24 (exact)
    float v = lk_u2f(x) * 0x1p24f;
    float r = (v + 12582912.0f) - 12582912.0f;  // round to nearest even (|v| < 1024)
    return (uint16_t)(sign | (uint32_t)r);
  }
  int32_t e = (int32_t)(x >> 23) - 112;
  if (e >= 31) return (uint16_t)(sign | 0x7c00);
  uint32_t m = x & 0x7fffff, half = ((uint32_t)e << 10) | (m >> 13), rem = m & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;  // may carry into inf: correct
  return (uint16_t)(sign | half);
}

LK_INLINE float lk_bf2f(uint16_t h) { return lk_u2f((uint32_t)h << 16); }
LK_INLINE uint16_t lk_f2bf(float f) {
  uint32_t u = lk_f2u(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64);  // quiet NaN
  return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/// roundf (half away from zero) for |v| < 2^31 without calling libm: how the int8 quantizers
/// (activations, LoRA factors) round.
LK_INLINE int lk_round_away(float v) {
  int i = (int)v;
  float frac = v - (float)i;
  return i + (frac >= 0.5f) - (frac <= -0.5f);
}

/// Round to nearest, ties to even, for |x| < 2^22.
LK_INLINE int lk_nearest_int(float x) {
  float v = x + 12582912.0f;
  return (int)(lk_f2u(v) & 0x7fffff) - 0x400000;
}

/// Q4_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
LK_INLINE void lk_q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// ---- ISA ---------------------------------------------------------------------------------
extern _Atomic int lk_isa_level;
/// The calling thread's own level (lk_set_thread_isa), or -1: then lk_isa_level applies. Pool
/// workers take the level of the thread that started the job.
extern _Thread_local int lk_isa_thread;
LK_INLINE int lk_cur_isa(void) {
  int t = lk_isa_thread;
  return t >= 0 ? t : atomic_load_explicit(&lk_isa_level, memory_order_relaxed);
}

// ---- per-ISA entry points ----------------------------------------------------------------
// Row dequantization (SIMD versions must equal the reference bit for bit).
void lk_dequant_ref(int type, const void *src, float *dst, int64_t n);
void lk_dequant_avx2(int type, const void *src, float *dst, int64_t n);
void lk_dequant_avx512(int type, const void *src, float *dst, int64_t n);

// Activation quantization (all ISAs produce identical bytes).
void lk_quant_act_scalar(int atype, const float *x, void *xq, int64_t n);
void lk_quant_act_avx2(int atype, const float *x, void *xq, int64_t n);
void lk_quant_act_avx512(int atype, const float *x, void *xq, int64_t n);

// Matvec / matmul per ISA, same contract as lk_matvec / lk_matmul.
typedef void (*lk_matvec_fn)(int, float *, const void *, const void *, int64_t, int64_t, int64_t);
typedef void (*lk_matmul_fn)(int, float *, int64_t, const void *, const void *, int64_t, int64_t, int64_t,
                             int64_t, int64_t);
void lk_matvec_scalar(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1);
void lk_matmul_scalar(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride, int64_t ntok,
                      int64_t ncols, int64_t r0, int64_t r1);
void lk_matvec_avx2(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1);
void lk_matmul_avx2(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride, int64_t ntok,
                    int64_t ncols, int64_t r0, int64_t r1);
void lk_matvec_avx512(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1);
void lk_matmul_avx512(int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq,
                      int64_t xstride, int64_t ntok, int64_t ncols, int64_t r0, int64_t r1);

// Per-type pieces the ISA files share.
// Q4_0/Q4_1/Q8_0 (32-element blocks) with VNNI/AVX2 tiles (dot_q*.c):
void lk_mv_q32_avx512(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1);
/// The same product with AMX tiles for token groups of 4 or more (bit-identical to lk_mm_q32_avx512).
void lk_mm_q32_amx(int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq, int64_t xstride,
                   int64_t ntok, int64_t ncols, int64_t r0, int64_t r1);
void lk_prepack(int wtype, const void *W, int64_t rows, int64_t cols, void *out);
void lk_lora_shrink_q8_packed_avx512(float *t, int64_t ldt, const void *xq, int64_t xstride, int64_t ntok,
                                     const void *apk, int64_t rank, int64_t cols);
/// Bytes of one block record of a prepacked 16-row tile (mm_q32_avx512.c describes the layout).
static inline int64_t lk_record_bytes(int wtype) { return wtype == LK_Q8_0 ? 576 : 320; }
void lk_mm_q32_avx512(int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq,
                      int64_t xstride, int64_t ntok, int64_t ncols, int64_t r0, int64_t r1);
void lk_mv_q32_avx2(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1);
void lk_mm_q32_avx2(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride, int64_t ntok,
                    int64_t ncols, int64_t r0, int64_t r1);
// K-quants: one weight row · one Q8_K activation row (dot_k.c).
float lk_dot_q4k_scalar(const void *w, const void *x, int64_t n);
float lk_dot_q6k_scalar(const void *w, const void *x, int64_t n);
float lk_dot_q4k_avx2(const void *w, const void *x, int64_t n);
float lk_dot_q6k_avx2(const void *w, const void *x, int64_t n);
float lk_dot_q4k_avx512(const void *w, const void *x, int64_t n);
float lk_dot_q6k_avx512(const void *w, const void *x, int64_t n);
// Float weights (F32/F16/BF16) × f32 activations (dot_f.c).
void lk_mv_f_scalar(int wtype, float *y, const void *W, const float *x, int64_t ncols, int64_t r0, int64_t r1);
void lk_mv_f_avx2(int wtype, float *y, const void *W, const float *x, int64_t ncols, int64_t r0, int64_t r1);
void lk_mv_f_avx512(int wtype, float *y, const void *W, const float *x, int64_t ncols, int64_t r0, int64_t r1);
void lk_mm_f_avx2(int wtype, float *Y, int64_t ldy, const void *W, const float *X, int64_t xstride, int64_t ntok,
                  int64_t ncols, int64_t r0, int64_t r1);
void lk_mm_f_avx512(int wtype, float *Y, int64_t ldy, const void *W, const float *X, int64_t xstride,
                    int64_t ntok, int64_t ncols, int64_t r0, int64_t r1);
