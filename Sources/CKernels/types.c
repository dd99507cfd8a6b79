// Type table (ggml numbering and block sizes), the run-time ISA switch, and the dispatchers
// that route each public kernel to its scalar / AVX2 / AVX-512 implementation.
#include "internal.h"
#include <stdlib.h>
#if LK_X86 && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

// ---- ISA ---------------------------------------------------------------------------------
_Atomic int lk_isa_level = -1;
_Thread_local int lk_isa_thread = -1;
static _Atomic int lk_isa_best = -1;

#if LK_X86
/// AMX-TILE and AMX-INT8 in CPUID, their state enabled by the OS (XCR0 bits 17, 18), and this
/// process allowed to use the tile data (Linux asks for it once: ARCH_REQ_XCOMP_PERM; without
/// it the first tile instruction raises SIGILL).
static int amx_usable(void) {
#if defined(__linux__)
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25))) return 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE: xgetbv is there
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return 0;
  enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
  return 0;
#endif
}
#endif

int lk_cpu_isa(void) {
  int best = atomic_load_explicit(&lk_isa_best, memory_order_relaxed);
  if (best >= 0) return best;
  best = LK_ISA_SCALAR;
#if LK_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    best = LK_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni"))
      best = amx_usable() ? LK_ISA_AMX : LK_ISA_AVX512;
  }
#endif
  atomic_store_explicit(&lk_isa_best, best, memory_order_relaxed);
  return best;
}

int lk_set_isa(int isa) {
  int best = lk_cpu_isa();
  if (isa < LK_ISA_SCALAR) isa = LK_ISA_SCALAR;
  if (isa > best) isa = best;
  atomic_store_explicit(&lk_isa_level, isa, memory_order_relaxed);
  return isa;
}

int lk_set_thread_isa(int isa) {
  if (isa < 0) {
    lk_isa_thread = -1;
    return lk_isa();
  }
  int best = lk_cpu_isa();
  lk_isa_thread = isa > best ? best : isa;
  return lk_isa_thread;
}

/// The first call picks the best level, or the one named by the LK_ISA environment variable
/// (scalar, avx2, avx512, amx) when set.
static int lk_init_isa(void) {
  int isa = lk_cpu_isa();
  const char *env = getenv("LK_ISA");
  if (env) {
    if (!strcmp(env, "scalar")) isa = LK_ISA_SCALAR;
    else if (!strcmp(env, "avx2")) isa = LK_ISA_AVX2;
    else if (!strcmp(env, "avx512")) isa = LK_ISA_AVX512;
  }
  return lk_set_isa(isa);
}

int lk_isa(void) {
  int l = lk_cur_isa();
  return l >= 0 ? l : lk_init_isa();
}

LK_INLINE int isa_now(void) {
  int l = lk_cur_isa();
  return __builtin_expect(l >= 0, 1) ? l : lk_init_isa();
}

// ---- types -------------------------------------------------------------------------------
int lk_type_known(int type) {
  switch (type) {
  case LK_F32: case LK_F16: case LK_BF16: case LK_Q4_0: case LK_Q4_1: case LK_Q8_0: case LK_Q8_1:
  case LK_Q4_K: case LK_Q6_K: case LK_Q8_K: return 1;
  default: return 0;
  }
}

int64_t lk_block_elems(int type) {
  switch (type) {
  case LK_F32: case LK_F16: case LK_BF16: return 1;
  case LK_Q4_0: case LK_Q4_1: case LK_Q8_0: case LK_Q8_1: return QK;
  case LK_Q4_K: case LK_Q6_K: case LK_Q8_K: return QK_K;
  default: return 0;
  }
}

int64_t lk_block_bytes(int type) {
  switch (type) {
  case LK_F32: return 4;
  case LK_F16: case LK_BF16: return 2;
  case LK_Q4_0: return sizeof(block_q4_0);
  case LK_Q4_1: return sizeof(block_q4_1);
  case LK_Q8_0: return sizeof(block_q8_0);
  case LK_Q8_1: return sizeof(block_q8_1);
  case LK_Q4_K: return sizeof(block_q4_K);
  case LK_Q6_K: return sizeof(block_q6_K);
  case LK_Q8_K: return sizeof(block_q8_K);
  default: return 0;
  }
}

int64_t lk_row_bytes(int type, int64_t n) {
  int64_t be = lk_block_elems(type);
  return be ? n / be * lk_block_bytes(type) : 0;
}

int lk_act_type(int wtype) {
  switch (wtype) {
  case LK_Q4_0: case LK_Q8_0: return LK_Q8_0;
  case LK_Q4_1: return LK_Q8_1;
  case LK_Q4_K: case LK_Q6_K: return LK_Q8_K;
  default: return LK_F32;
  }
}

int64_t lk_act_row_bytes(int wtype, int64_t n) { return lk_row_bytes(lk_act_type(wtype), n); }

// ---- dispatch ------------------------------------------------------------------------------
void lk_dequantize_row_ref(int type, const void *src, float *dst, int64_t n) { lk_dequant_ref(type, src, dst, n); }

void lk_dequantize_row(int type, const void *src, float *dst, int64_t n) {
  switch (isa_now()) {
#if LK_X86
  case LK_ISA_AMX:
  case LK_ISA_AVX512: lk_dequant_avx512(type, src, dst, n); return;
  case LK_ISA_AVX2: lk_dequant_avx2(type, src, dst, n); return;
#endif
  default: lk_dequant_ref(type, src, dst, n); return;
  }
}

void lk_quantize_act(int wtype, const float *x, void *xq, int64_t n) {
  int at = lk_act_type(wtype);
  if (at == LK_F32) {
    if ((const void *)x != xq) memmove(xq, x, (size_t)n * sizeof(float));
    return;
  }
  switch (isa_now()) {
#if LK_X86
  case LK_ISA_AMX:
  case LK_ISA_AVX512: lk_quant_act_avx512(at, x, xq, n); return;
  case LK_ISA_AVX2: lk_quant_act_avx2(at, x, xq, n); return;
#endif
  default: lk_quant_act_scalar(at, x, xq, n); return;
  }
}

void lk_matvec(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1) {
  if (r1 <= r0) return;
  switch (isa_now()) {
#if LK_X86
  case LK_ISA_AMX:
  case LK_ISA_AVX512: lk_matvec_avx512(wtype, y, W, xq, ncols, r0, r1); return;
  case LK_ISA_AVX2: lk_matvec_avx2(wtype, y, W, xq, ncols, r0, r1); return;
#endif
  default: lk_matvec_scalar(wtype, y, W, xq, ncols, r0, r1); return;
  }
}

void lk_matmul(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride, int64_t ntok,
               int64_t ncols, int64_t r0, int64_t r1) {
  lk_matmul_pre(wtype, Y, ldy, W, NULL, Xq, xstride, ntok, ncols, r0, r1);
}

int64_t lk_prepack_bytes(int wtype, int64_t rows, int64_t cols) {
  if (lk_isa() < LK_ISA_AVX512 || (wtype != LK_Q4_0 && wtype != LK_Q4_1 && wtype != LK_Q8_0)) return 0;
  if (rows <= 0 || rows % 16 != 0 || cols <= 0 || cols % QK != 0) return 0;
#if LK_X86
  return rows / 16 * (cols / QK) * lk_record_bytes(wtype);
#else
  return 0;
#endif
}

void lk_prepack_rows(int wtype, const void *W, int64_t rows, int64_t cols, void *out) {
#if LK_X86
  if (lk_prepack_bytes(wtype, rows, cols) > 0) lk_prepack(wtype, W, rows, cols, out);
#else
  (void)wtype, (void)W, (void)rows, (void)cols, (void)out;
#endif
}

void lk_matmul_pre(int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq, int64_t xstride,
                   int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  if (r1 <= r0 || ntok <= 0) return;
  switch (isa_now()) {
#if LK_X86
  case LK_ISA_AMX:
    if (wtype == LK_Q4_0 || wtype == LK_Q4_1 || wtype == LK_Q8_0) {
      lk_mm_q32_amx(wtype, Y, ldy, W, pre, Xq, xstride, ntok, ncols, r0, r1);
      return;
    }
    lk_matmul_avx512(wtype, Y, ldy, W, NULL, Xq, xstride, ntok, ncols, r0, r1);
    return;
  case LK_ISA_AVX512: lk_matmul_avx512(wtype, Y, ldy, W, pre, Xq, xstride, ntok, ncols, r0, r1); return;
  case LK_ISA_AVX2: lk_matmul_avx2(wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1); return;
#endif
  default: lk_matmul_scalar(wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1); return;
  }
}

#if LK_X86
/// Prefetches (into L2) the row 8 KB ahead of `row` (rb bytes), not past `end`.
static inline void prefetch_row(const char *row, int64_t rb, const char *end) {
  for (int64_t o = 0; o < rb && row + 8192 + o < end; o += 64) _mm_prefetch(row + 8192 + o, _MM_HINT_T1);
}

// Per-type routing inside each SIMD level.
void lk_matvec_avx512(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1) {
  switch (wtype) {
  case LK_Q4_0: case LK_Q4_1: case LK_Q8_0: lk_mv_q32_avx512(wtype, y, W, xq, ncols, r0, r1); return;
  case LK_F32: case LK_F16: case LK_BF16: lk_mv_f_avx512(wtype, y, W, (const float *)xq, ncols, r0, r1); return;
  case LK_Q4_K: case LK_Q6_K: {
    int64_t rb = lk_row_bytes(wtype, ncols);
    float (*dot)(const void *, const void *, int64_t) = wtype == LK_Q4_K ? lk_dot_q4k_avx512 : lk_dot_q6k_avx512;
    for (int64_t r = r0; r < r1; r++) {
      prefetch_row((const char *)W + r * rb, rb, (const char *)W + r1 * rb);
      y[r - r0] = dot((const char *)W + r * rb, xq, ncols);
    }
    return;
  }
  default: lk_matvec_scalar(wtype, y, W, xq, ncols, r0, r1); return;
  }
}

void lk_matvec_avx2(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1) {
  switch (wtype) {
  case LK_Q4_0: case LK_Q4_1: case LK_Q8_0: lk_mv_q32_avx2(wtype, y, W, xq, ncols, r0, r1); return;
  case LK_F32: case LK_F16: case LK_BF16: lk_mv_f_avx2(wtype, y, W, (const float *)xq, ncols, r0, r1); return;
  case LK_Q4_K: case LK_Q6_K: {
    int64_t rb = lk_row_bytes(wtype, ncols);
    float (*dot)(const void *, const void *, int64_t) = wtype == LK_Q4_K ? lk_dot_q4k_avx2 : lk_dot_q6k_avx2;
    for (int64_t r = r0; r < r1; r++) {
      prefetch_row((const char *)W + r * rb, rb, (const char *)W + r1 * rb);
      y[r - r0] = dot((const char *)W + r * rb, xq, ncols);
    }
    return;
  }
  default: lk_matvec_scalar(wtype, y, W, xq, ncols, r0, r1); return;
  }
}

/// K-quant products: one weight row at a time against every token (the row stays in L1).
static void mm_rows_by_dot(float (*dot)(const void *, const void *, int64_t), int wtype, float *Y, int64_t ldy,
                           const void *W, const void *Xq, int64_t xstride, int64_t ntok, int64_t ncols, int64_t r0,
                           int64_t r1) {
  int64_t rb = lk_row_bytes(wtype, ncols);
  for (int64_t r = r0; r < r1; r++)
    for (int64_t t = 0; t < ntok; t++)
      Y[t * ldy + r] = dot((const char *)W + r * rb, (const char *)Xq + t * xstride, ncols);
}

void lk_matmul_avx512(int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq,
                      int64_t xstride, int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  switch (wtype) {
  case LK_Q4_0: case LK_Q4_1: case LK_Q8_0:
    lk_mm_q32_avx512(wtype, Y, ldy, W, pre, Xq, xstride, ntok, ncols, r0, r1);
    return;
  case LK_F32: case LK_F16: case LK_BF16:
    lk_mm_f_avx512(wtype, Y, ldy, W, (const float *)Xq, xstride, ntok, ncols, r0, r1);
    return;
  case LK_Q4_K: mm_rows_by_dot(lk_dot_q4k_avx512, wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1); return;
  case LK_Q6_K: mm_rows_by_dot(lk_dot_q6k_avx512, wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1); return;
  default: lk_matmul_scalar(wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1); return;
  }
}

void lk_matmul_avx2(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride, int64_t ntok,
                    int64_t ncols, int64_t r0, int64_t r1) {
  switch (wtype) {
  case LK_Q4_0: case LK_Q4_1: case LK_Q8_0:
    lk_mm_q32_avx2(wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1);
    return;
  case LK_F32: case LK_F16: case LK_BF16:
    lk_mm_f_avx2(wtype, Y, ldy, W, (const float *)Xq, xstride, ntok, ncols, r0, r1);
    return;
  case LK_Q4_K: mm_rows_by_dot(lk_dot_q4k_avx2, wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1); return;
  case LK_Q6_K: mm_rows_by_dot(lk_dot_q6k_avx2, wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1); return;
  default: lk_matmul_scalar(wtype, Y, ldy, W, Xq, xstride, ntok, ncols, r0, r1); return;
  }
}
#endif
