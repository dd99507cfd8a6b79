// Kernel micro-benchmark for CKernels (not built by the package). Build and run from the repo root:
//   clang -O3 -fno-math-errno -ISources/CKernels/include -ISources/CKernels \
//         Sources/CKernels/*.c bench/kernels.c -o /tmp/lk-bench -lpthread -lm && /tmp/lk-bench
// (clang is /opt/swift/usr/bin/clang here.) Reports, per ISA and thread count (1 and 2):
//   q41 hot   Q4_1 matvec 1536x576, one matrix (cache resident), GB/s of weights
//   q41 cold  the same over 240 copies (133 MB, beyond the L3), GB/s
//   q80 head  Q8_0 matvec 49152x576 (the tied output head, 30 MB), GB/s
//   model     the whole SmolLM2-135M per-token matvec set: 30 layers x (q, k, v, o, gate, up,
//             down; Q4_1) + the Q8_0 head, tokens/s (weights only: no attention, no norms)
//   batch16   the same set for 16 sequences at once (lk_matmul_mt, 16 rows), aggregate tokens/s
//   matmul    Q4_1 matmul 1536x576 x 512 tokens, GFLOP/s (2·rows·cols·tokens)
//   pool      lk_pool_run round trip of an empty job, microseconds
// Every figure is the best of many short runs, taken round-robin over all configurations so
// that other load on the machine spreads over them evenly; medians are printed in brackets.
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

/// `copies` copies of a random rows x cols matrix of type t, back to back.
static char *make_matrix(int t, int64_t rows, int64_t cols, int copies) {
  int64_t rb = lk_row_bytes(t, cols), bytes = rb * rows;
  char *w = aligned_alloc(64, (size_t)((bytes * copies + 63) & ~63));
  float *row = malloc(sizeof(float) * cols);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++) row[c] = frand() * 0.2f;
    lk_quantize_row(t, row, w + r * rb, cols);
  }
  for (int c = 1; c < copies; c++) memcpy(w + c * bytes, w, (size_t)bytes);
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

enum { NCFG = 8, NMET = 7, ROUNDS = 41 };
static double samples[NCFG][NMET][ROUNDS];  // (isa·2 + threads-1, metric, round) seconds per unit

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void nop(void *ctx, int ith, int nth) { (void)ctx, (void)ith, (void)nth; }

int main(void) {
  const char *isa_name[] = {"scalar", "avx2", "avx512", "amx"};
  int best = lk_cpu_isa();
  // SmolLM2-135M per-token matrices (rows x cols): q, k, v, o, gate, up, down.
  const int64_t shape[7][2] = {{576, 576}, {192, 576}, {192, 576}, {576, 576}, {1536, 576}, {1536, 576}, {576, 1536}};
  char *model[30][7];
  for (int l = 0; l < 30; l++)
    for (int m = 0; m < 7; m++) model[l][m] = make_matrix(LK_Q4_1, shape[m][0], shape[m][1], 1);
  char *head = make_matrix(LK_Q8_0, 49152, 576, 1);
  const int cold = 240;
  char *q41 = make_matrix(LK_Q4_1, 1536, 576, cold);
  const int64_t q41_bytes = lk_row_bytes(LK_Q4_1, 576) * 1536, head_bytes = lk_row_bytes(LK_Q8_0, 576) * 49152;
  char *x41 = make_act(LK_Q4_1, 1536, 512), *x80 = make_act(LK_Q8_0, 576, 16);
  const int64_t xb41 = lk_act_row_bytes(LK_Q4_1, 576), xb41w = lk_act_row_bytes(LK_Q4_1, 1536);
  const int64_t xb80 = lk_act_row_bytes(LK_Q8_0, 576);
  float *y = aligned_alloc(64, sizeof(float) * 49152);
  float *Y = aligned_alloc(64, sizeof(float) * 49152 * 16);  // (16, 49152) or (512, 1536)
  lk_pool *pools[2] = {lk_pool_create(1), lk_pool_create(2)};

  for (int round = 0; round < ROUNDS; round++)
    for (int isa = 0; isa <= best; isa++)
      for (int nth = 1; nth <= 2; nth++) {
        lk_set_isa(isa);
        lk_pool *pool = pools[nth - 1];
        double *s[NMET];
        for (int m = 0; m < NMET; m++) s[m] = &samples[isa * 2 + nth - 1][m][round];
        int reps = isa ? 20 : 2;
        double t0 = now();
        for (int i = 0; i < reps; i++) lk_matvec_mt(pool, LK_Q4_1, y, q41, x41, 576, 1536);
        *s[0] = (now() - t0) / reps;
        int n = isa ? cold : 12;
        t0 = now();
        for (int c = 0; c < n; c++) lk_matvec_mt(pool, LK_Q4_1, y, q41 + c * q41_bytes, x41, 576, 1536);
        *s[1] = (now() - t0) / n;
        t0 = now();
        lk_matvec_mt(pool, LK_Q8_0, y, head, x80, 576, 49152);
        *s[2] = now() - t0;
        t0 = now();
        for (int l = 0; l < 30; l++)
          for (int m = 0; m < 7; m++) lk_matvec_mt(pool, LK_Q4_1, y, model[l][m], x41, shape[m][1], shape[m][0]);
        lk_matvec_mt(pool, LK_Q8_0, y, head, x80, 576, 49152);
        *s[3] = now() - t0;
        if (isa || round < 3) {
          t0 = now();
          lk_matmul_mt(pool, LK_Q4_1, Y, 1536, q41, x41, xb41, 512, 576, 1536);
          *s[4] = now() - t0;
        } else {
          *s[4] = 1e9;
        }
        t0 = now();
        for (int i = 0; i < 2000; i++) lk_pool_run(pool, nop, NULL);
        *s[5] = (now() - t0) / 2000;
        if (isa || round < 3) {
          t0 = now();
          for (int l = 0; l < 30; l++)
            for (int m = 0; m < 7; m++)
              lk_matmul_mt(pool, LK_Q4_1, Y, shape[m][0], model[l][m], x41, xb41w, 16, shape[m][1], shape[m][0]);
          lk_matmul_mt(pool, LK_Q8_0, Y, 49152, head, x80, xb80, 16, 576, 49152);
          *s[6] = (now() - t0) / 16;
        } else {
          *s[6] = 1e9;
        }
      }

  printf("%-7s %3s %14s %14s %14s %14s %16s %12s %16s\n", "isa", "thr", "q41 hot GB/s", "q41 cold GB/s",
         "q80 head GB/s", "model tok/s", "matmul GFLOP/s", "pool us", "batch16 tok/s");
  for (int isa = 0; isa <= best; isa++)
    for (int nth = 1; nth <= 2; nth++) {
      double best_[NMET], med[NMET];
      for (int m = 0; m < NMET; m++) {
        double *v = samples[isa * 2 + nth - 1][m];
        qsort(v, ROUNDS, sizeof(double), cmp);
        best_[m] = v[0];
        med[m] = v[ROUNDS / 2];
      }
      double flop = 2.0 * 1536 * 576 * 512;
      printf("%-7s %3d %6.1f (%5.1f) %6.1f (%5.1f) %6.1f (%5.1f) %6.0f (%5.0f) %7.0f (%6.0f) %5.2f (%4.2f) %7.0f (%6.0f)\n",
             isa_name[isa], nth, q41_bytes / best_[0] / 1e9, q41_bytes / med[0] / 1e9, q41_bytes / best_[1] / 1e9,
             q41_bytes / med[1] / 1e9, head_bytes / best_[2] / 1e9, head_bytes / med[2] / 1e9, 1 / best_[3],
             1 / med[3], flop / best_[4] / 1e9, isa || ROUNDS / 2 < 3 ? flop / med[4] / 1e9 : flop / best_[4] / 1e9,
             best_[5] * 1e6, med[5] * 1e6, 1 / best_[6], isa || ROUNDS / 2 < 3 ? 1 / med[6] : 1 / best_[6]);
    }
  lk_pool_destroy(pools[0]);
  lk_pool_destroy(pools[1]);
  return 0;
}
