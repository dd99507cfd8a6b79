// Kernel micro-benchmark for CKernels (not built by the package). Build and run:
//   clang -O3 -fno-math-errno -ISources/CKernels/include -ISources/CKernels \
//         Sources/CKernels/*.c bench/kernels.c -o /tmp/lk-bench -lpthread -lm && /tmp/lk-bench
// Reports, per ISA and thread count:
//   - Q4_1 matvec 1536x576 and Q8_0 matvec 49152x576 in GB/s of weights read, both "hot" (one
//     matrix, cache resident) and "cold" (rotating over copies larger than the L3);
//   - the whole SmolLM2-135M per-token matvec set (30 layers of Q4_1 + the Q8_0 head) in tokens/s;
//   - Q4_1 matmul 1536x576 x 512 tokens in GFLOP/s (2·rows·cols·tokens per run);
//   - lk_pool_run round-trip latency of an empty job.
#include "CKernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (float)((rng >> 40) * (1.0 / 16777216.0) - 0.5);
}

/// n copies of a random rows x cols matrix of type t.
static char *make_matrix(int t, int64_t rows, int64_t cols, int copies) {
  int64_t rb = lk_row_bytes(t, cols);
  char *w = aligned_alloc(64, (size_t)((rb * rows * copies + 63) & ~63));
  float *row = malloc(sizeof(float) * cols);
  for (int64_t r = 0; r < rows * copies; r++) {
    for (int64_t c = 0; c < cols; c++) row[c] = frand() * 0.2f;
    lk_quantize_row(t, row, w + r * rb, cols);
  }
  free(row);
  return w;
}

static char *make_act(int wt, int64_t cols, int n) {
  int64_t xb = lk_act_row_bytes(wt, cols);
  char *xq = aligned_alloc(64, (size_t)((xb * n + 63) & ~63));
  float *x = malloc(sizeof(float) * cols);
  for (int i = 0; i < n; i++) {
    for (int64_t c = 0; c < cols; c++) x[c] = frand() * 4;
    lk_quantize_act(wt, x, xq + i * xb, cols);
  }
  free(x);
  return xq;
}

/// GB/s of a matvec over `copies` copies of the matrix (in turn), best of a few rounds.
static double bench_matvec(lk_pool *pool, int t, int64_t rows, int64_t cols, int copies, const char *W,
                           const char *xq, float *y) {
  int64_t bytes = lk_row_bytes(t, cols) * rows;
  double target = 0.25, best = 0;
  for (int round = 0; round < 3; round++) {
    int iters = 0;
    double t0 = now(), el;
    do {
      for (int c = 0; c < copies; c++) lk_matvec_mt(pool, t, y, W + c * bytes, xq, cols, rows);
      iters += copies;
      el = now() - t0;
    } while (el < target);
    double gbs = (double)bytes * iters / el / 1e9;
    if (gbs > best) best = gbs;
  }
  return best;
}

typedef struct {
  int64_t rows, cols;
  int type;
} shape;

int main(void) {
  const char *isa_name[] = {"scalar", "avx2", "avx512"};
  int best = lk_cpu_isa();
  // The per-token matrices of SmolLM2-135M (rows x cols): q, k, v, o, gate, up, down per layer.
  const shape layer[] = {{576, 576, LK_Q4_1}, {192, 576, LK_Q4_1}, {192, 576, LK_Q4_1}, {576, 576, LK_Q4_1},
                         {1536, 576, LK_Q4_1}, {1536, 576, LK_Q4_1}, {576, 1536, LK_Q4_1}};
  const int nlayer = 30;
  char *model[30][7];
  for (int l = 0; l < nlayer; l++)
    for (int m = 0; m < 7; m++) model[l][m] = make_matrix(layer[m].type, layer[m].rows, layer[m].cols, 1);
  char *head = make_matrix(LK_Q8_0, 49152, 576, 1);
  const int cold_q41 = 240;  // 240 x 553 KB = 133 MB
  char *q41 = make_matrix(LK_Q4_1, 1536, 576, cold_q41);
  const int cold_q80 = 4;  // 4 x 30 MB
  char *q80 = make_matrix(LK_Q8_0, 49152, 576, cold_q80);
  char *x41 = make_act(LK_Q4_1, 1536, 512), *x80 = make_act(LK_Q8_0, 576, 1);
  float *y = aligned_alloc(64, sizeof(float) * 49152 * 4);
  float *Y = aligned_alloc(64, sizeof(float) * 1536 * 512);

  printf("%-7s %3s %12s %12s %12s %12s %10s %12s\n", "isa", "thr", "Q4_1 hot", "Q4_1 cold", "Q8_0 hot",
         "Q8_0 cold", "model", "matmul");
  printf("%-7s %3s %12s %12s %12s %12s %10s %12s\n", "", "", "GB/s", "GB/s", "GB/s", "GB/s", "tok/s", "GFLOP/s");
  for (int isa = 0; isa <= best; isa++) {
    lk_set_isa(isa);
    for (int nth = 1; nth <= 2; nth++) {
      lk_pool *pool = lk_pool_create(nth);
      double q41h = bench_matvec(pool, LK_Q4_1, 1536, 576, 1, q41, x41, y);
      double q41c = bench_matvec(pool, LK_Q4_1, 1536, 576, cold_q41, q41, x41, y);
      double q80h = bench_matvec(pool, LK_Q8_0, 49152, 576, 1, q80, x80, y);
      double q80c = bench_matvec(pool, LK_Q8_0, 49152, 576, cold_q80, q80, x80, y);
      // the whole per-token matvec set (activations reused; the point is the weight traffic)
      double tps = 0;
      for (int round = 0; round < 3; round++) {
        int tokens = 0;
        double t0 = now(), el;
        do {
          for (int l = 0; l < nlayer; l++)
            for (int m = 0; m < 7; m++)
              lk_matvec_mt(pool, layer[m].type, y, model[l][m], x41, layer[m].cols, layer[m].rows);
          lk_matvec_mt(pool, LK_Q8_0, y, head, x80, 576, 49152);
          tokens++;
          el = now() - t0;
        } while (el < 0.3);
        if (tokens / el > tps) tps = tokens / el;
      }
      // prefill GEMM
      double gf = 0;
      int64_t xb = lk_act_row_bytes(LK_Q4_1, 576);
      for (int round = 0; round < 3; round++) {
        int iters = 0;
        double t0 = now(), el;
        do {
          lk_matmul_mt(pool, LK_Q4_1, Y, 1536, q41, x41, xb, 512, 576, 1536);
          iters++;
          el = now() - t0;
        } while (el < (isa ? 0.3 : 1.0));
        double g = 2.0 * 1536 * 576 * 512 * iters / el / 1e9;
        if (g > gf) gf = g;
      }
      printf("%-7s %3d %12.1f %12.1f %12.1f %12.1f %10.1f %12.1f\n", isa_name[isa], nth, q41h, q41c, q80h, q80c, tps,
             gf);
      fflush(stdout);
      lk_pool_destroy(pool);
    }
  }
  // pool latency
  lk_pool *pool = lk_pool_create(2);
  extern void lk_bench_nop(void *, int, int);
  for (int round = 0; round < 2; round++) {
    int n = 200000;
    double t0 = now();
    for (int i = 0; i < n; i++) lk_pool_run(pool, lk_bench_nop, NULL);
    printf("lk_pool_run (2 threads, empty job): %.2f us\n", (now() - t0) / n * 1e6);
  }
  lk_pool_destroy(pool);
  return 0;
}

void lk_bench_nop(void *ctx, int ith, int nth) { (void)ctx, (void)ith, (void)nth; }
