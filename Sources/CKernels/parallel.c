// Multi-threaded fronts: split the rows of a product (or a dequantization) into chunks of the
// pool, in multiples of 16 rows so every chunk runs whole 4-row tiles. Products use
// PRODUCT_CHUNKS chunks per thread, so a thread that loses its core leaves some of its share to
// the other. Not more: every chunk starts its row stream cold (2026-12-05: 4 per thread instead
// of 2 cost ~4% of single-stream decode, 3 of 3 alternating runs).
#include "internal.h"

enum { PRODUCT_CHUNKS = 2 };

typedef struct {
  int wtype;
  float *y;
  int64_t ldy;
  const void *W;
  const void *pre;
  const void *xq;
  int64_t xstride, ntok, ncols, nrows;
} lk_product_job;

/// Rows [*r0, *r1) of thread ith out of nth.
LK_INLINE void split_rows(int64_t nrows, int ith, int nth, int64_t *r0, int64_t *r1) {
  int64_t per = (nrows + nth - 1) / nth;
  per = (per + 15) & ~(int64_t)15;
  int64_t a = per * ith, b = a + per;
  *r0 = a < nrows ? a : nrows;
  *r1 = b < nrows ? b : nrows;
}

static void matvec_task(void *ctx, int ith, int nth) {
  const lk_product_job *j = ctx;
  int64_t r0, r1;
  split_rows(j->nrows, ith, nth, &r0, &r1);
  if (r0 < r1) lk_matvec(j->wtype, j->y + r0, j->W, j->xq, j->ncols, r0, r1);
}

void lk_matvec_mt(lk_pool *pool, int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t nrows) {
  lk_product_job j = {wtype, y, 0, W, NULL, xq, 0, 1, ncols, nrows};
  if (lk_pool_threads(pool) == 1 || nrows < 32) {
    lk_matvec(wtype, y, W, xq, ncols, 0, nrows);
    return;
  }
  lk_pool_run_chunks(pool, matvec_task, &j, PRODUCT_CHUNKS * lk_pool_threads(pool));
}

static void matmul_task(void *ctx, int ith, int nth) {
  const lk_product_job *j = ctx;
  int64_t r0, r1;
  split_rows(j->nrows, ith, nth, &r0, &r1);
  if (r0 < r1) lk_matmul_pre(j->wtype, j->y, j->ldy, j->W, j->pre, j->xq, j->xstride, j->ntok, j->ncols, r0, r1);
}

void lk_matmul_mt(lk_pool *pool, int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride,
                  int64_t ntok, int64_t ncols, int64_t nrows) {
  lk_matmul_mt_pre(pool, wtype, Y, ldy, W, NULL, Xq, xstride, ntok, ncols, nrows);
}

void lk_matmul_mt_pre(lk_pool *pool, int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq,
                      int64_t xstride, int64_t ntok, int64_t ncols, int64_t nrows) {
  lk_product_job j = {wtype, Y, ldy, W, pre, Xq, xstride, ntok, ncols, nrows};
  if (lk_pool_threads(pool) == 1 || nrows < 32) {
    lk_matmul_pre(wtype, Y, ldy, W, pre, Xq, xstride, ntok, ncols, 0, nrows);
    return;
  }
  lk_pool_run_chunks(pool, matmul_task, &j, PRODUCT_CHUNKS * lk_pool_threads(pool));
}

typedef struct {
  int type;
  const void *src;
  float *dst;
  int64_t ncols, nrows;
} lk_dequant_job;

static void dequant_task(void *ctx, int ith, int nth) {
  const lk_dequant_job *j = ctx;
  int64_t r0 = j->nrows * ith / nth, r1 = j->nrows * (ith + 1) / nth, rb = lk_row_bytes(j->type, j->ncols);
  for (int64_t r = r0; r < r1; r++) lk_dequantize_row(j->type, (const char *)j->src + r * rb, j->dst + r * j->ncols, j->ncols);
}

void lk_dequantize_rows_mt(lk_pool *pool, int type, const void *src, float *dst, int64_t ncols, int64_t nrows) {
  lk_dequant_job j = {type, src, dst, ncols, nrows};
  lk_pool_run(pool, dequant_task, &j);
}
