// CKernels: the few hot inner loops of lorad, in C.
//
// Weight types use ggml's numbering and exact block layouts (ggml-common.h):
//   F32=0 F16=1 Q4_0=2 Q4_1=3 Q8_0=8 Q8_1=9 Q4_K=12 Q6_K=14 Q8_K=15 BF16=30
// Activations are quantized per row to the partner type llama.cpp uses for the dot:
//   Q4_0, Q8_0 -> Q8_0;  Q4_1 -> Q8_1;  Q4_K, Q6_K -> Q8_K;  F32/F16/BF16 -> F32 (no quantization).
// Every kernel has an AVX-512 (VNNI where it pays), an AVX2 and a scalar path, chosen at run time
// from CPUID; lk_set_isa() pins one for tests and benchmarks. The AMX level is AVX-512 plus AMX
// tiles for the batched Q4_0 / Q4_1 / Q8_0 products (same results, bit for bit).
// Nothing here allocates except lk_pool_create.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  LK_F32 = 0, LK_F16 = 1, LK_Q4_0 = 2, LK_Q4_1 = 3, LK_Q8_0 = 8, LK_Q8_1 = 9,
  LK_Q4_K = 12, LK_Q6_K = 14, LK_Q8_K = 15, LK_BF16 = 30
};

enum { LK_ISA_SCALAR = 0, LK_ISA_AVX2 = 1, LK_ISA_AVX512 = 2, LK_ISA_AMX = 3 };

/// Best ISA level this CPU supports (LK_ISA_*); AMX counts only where the kernel lets this
/// process use the tile registers (Linux: arch_prctl ARCH_REQ_XCOMP_PERM). The level in force
/// starts as this one, or as the one named by the environment variable LK_ISA ("scalar", "avx2",
/// "avx512", "amx") if set.
int lk_cpu_isa(void);
/// Pin the ISA level used by every kernel (clamped to what the CPU supports); returns the level in force.
int lk_set_isa(int isa);
/// Pin the ISA level for the calling thread only, and for the pool jobs it starts, over the
/// process-wide level; a negative isa removes the pin. Returns the level now in force for this
/// thread. For tests that compare ISA paths while other threads keep computing (lk_set_isa would
/// switch them too, mid-computation).
int lk_set_thread_isa(int isa);
/// The ISA level in force (for the calling thread).
int lk_isa(void);

/// 1 if lorad knows this weight type, else 0.
int lk_type_known(int type);
/// Elements per block (1 for F32/F16/BF16) and bytes per block.
int64_t lk_block_elems(int type);
int64_t lk_block_bytes(int type);
/// Bytes of one row of n elements (n must be a multiple of the block size).
int64_t lk_row_bytes(int type, int64_t n);

/// dst[0..n) = dequantized src row (n a multiple of the block size).
void lk_dequantize_row(int type, const void *src, float *dst, int64_t n);
/// Plain scalar reference dequantization, never SIMD: the tests' ground truth.
void lk_dequantize_row_ref(int type, const void *src, float *dst, int64_t n);

/// The activation type paired with weight type `wtype` for dot products (see above).
int lk_act_type(int wtype);
/// Bytes of one quantized activation row of n elements for weights of type `wtype`.
int64_t lk_act_row_bytes(int wtype, int64_t n);
/// Quantize a float row for dot products with `wtype` weights (a copy for float types).
void lk_quantize_act(int wtype, const float *x, void *xq, int64_t n);
/// A Q8_1 activation row of n elements (n a multiple of 32) as the Q8_0 row lk_quantize_act would
/// make of the same floats: both quantize a block alike (scale amax / 127, the same bytes), so
/// this drops each block's sum and moves its bytes. Products with Q8_0 weights (LoRA factors)
/// reuse the row quantized for Q4_1 weights this way.
void lk_q8_1_to_q8_0(const void *src, void *dst, int64_t n);
/// Quantize a float row to a weight type (Q8_0, Q4_0, Q4_1 at least): used by tests and tools.
void lk_quantize_row(int type, const float *x, void *dst, int64_t n);

/// y[r - r0] = dot(W row r, x) for r in [r0, r1); W rows are lk_row_bytes(wtype, ncols) apart;
/// xq is one activation row from lk_quantize_act(wtype, ...).
void lk_matvec(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1);

/// Y[t * ldy + r] = dot(W row r, X row t) for t in [0, ntok), r in [r0, r1).
/// Xq holds ntok activation rows, xstride bytes apart. Tiled so each weight block is loaded once
/// per several tokens (the int8 GEMM for batched prefill and batched decode).
/// Batch invariance: on a given ISA level, Y's row for token t is bit-identical to lk_matvec on
/// X row t alone, whatever the other tokens, ntok and [r0, r1) (so also whatever the thread split
/// of lk_matmul_mt): a sequence decoded in a batch gets exactly the logits it gets alone.
void lk_matmul(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride,
               int64_t ntok, int64_t ncols, int64_t r0, int64_t r1);
/// lk_matmul with W also prepacked (pre from lk_prepack_rows, or NULL): the AVX-512 VNNI and
/// AMX products read pre's one stream instead of transposing 16 rows of W at every call (one
/// token: instead of lk_matvec's 16 interleaved row streams); the results are the same to the
/// bit. pre is used while the ISA level is avx512 or amx and r0 is a multiple of 16; otherwise,
/// and for everything else, W is read.
void lk_matmul_pre(int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq,
                   int64_t xstride, int64_t ntok, int64_t ncols, int64_t r0, int64_t r1);
/// Bytes of a rows x cols matrix of Q4_0, Q4_1 or Q8_0 prepacked for lk_matmul_pre: W's own size
/// for Q4 (1.06x for Q8_0); 0 when there is nothing to gain (this CPU has no AVX-512, another type,
/// rows not a multiple of 16).
int64_t lk_prepack_bytes(int wtype, int64_t rows, int64_t cols);
/// Writes W prepacked into out (lk_prepack_bytes of it, 64-byte aligned); nothing if that is 0.
void lk_prepack_rows(int wtype, const void *W, int64_t rows, int64_t cols, void *out);

// ---- thread pool -------------------------------------------------------------------------
/// A fixed set of compute threads that spin briefly between jobs and then sleep; the caller
/// works too. A job is a number of chunks that free threads claim, so a thread the OS does not
/// schedule never holds the others up. The pool is used from one thread at a time.
typedef struct lk_pool lk_pool;
typedef void (*lk_task_fn)(void *ctx, int ith, int nth);
/// nthreads counts the caller; nthreads == 1 makes a pool that runs jobs inline.
lk_pool *lk_pool_create(int nthreads);
void lk_pool_destroy(lk_pool *pool);
int lk_pool_threads(const lk_pool *pool);
/// Runs fn(ctx, ith, nth) once for every ith in [0, nth), nth = the pool's threads; returns
/// when all are done. No two runs of one ith overlap, so ith may pick a per-thread scratch.
void lk_pool_run(lk_pool *pool, lk_task_fn fn, void *ctx);
/// The same with nchunks chunks: finer chunks balance better when the cores are shared.
void lk_pool_run_chunks(lk_pool *pool, lk_task_fn fn, void *ctx, int nchunks);
/// Puts idle workers to sleep at once (call before handing the cores to OpenBLAS).
void lk_pool_park(lk_pool *pool);

/// Multi-threaded lk_matvec over all nrows rows, split by rows across the pool.
void lk_matvec_mt(lk_pool *pool, int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t nrows);
/// Multi-threaded lk_matmul over all nrows rows.
void lk_matmul_mt(lk_pool *pool, int wtype, float *Y, int64_t ldy, const void *W, const void *Xq,
                  int64_t xstride, int64_t ntok, int64_t ncols, int64_t nrows);
/// Multi-threaded lk_matmul_pre over all nrows rows.
void lk_matmul_mt_pre(lk_pool *pool, int wtype, float *Y, int64_t ldy, const void *W, const void *pre,
                      const void *Xq, int64_t xstride, int64_t ntok, int64_t ncols, int64_t nrows);
/// Multi-threaded dequantization of nrows rows of ncols into dst (nrows x ncols, row-major).
void lk_dequantize_rows_mt(lk_pool *pool, int type, const void *src, float *dst, int64_t ncols, int64_t nrows);

// ---- float helpers used by the forward ---------------------------------------------------
/// out = x * w / sqrt(mean(x^2) + eps), n elements.
void lk_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);
/// out[i] = silu(gate[i]) * up[i].
void lk_swiglu(float *out, const float *gate, const float *up, int64_t n);
/// Returns dot(a, b) of n floats.
float lk_dot_f32(const float *a, const float *b, int64_t n);
/// y += a * x, n floats.
void lk_axpy_f32(float *y, float a, const float *x, int64_t n);

#ifdef __cplusplus
}
#endif

#include "lk_attention.h"
#include "lk_lora.h"
#include "lk_softmax.h"
