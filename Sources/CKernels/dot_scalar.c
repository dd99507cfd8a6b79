// Scalar products of every weight type with its activation partner: the portable fallback and
// the ground truth the SIMD paths are tested against. Integer block dots, float accumulation.
#include "internal.h"

static float dot_q4_0(const block_q4_0 *w, const block_q8_0 *x, int64_t nb) {
  float s = 0;
  for (int64_t b = 0; b < nb; b++) {
    int sumi = 0;
    for (int j = 0; j < QK / 2; j++)
      sumi += ((w[b].qs[j] & 0xF) - 8) * x[b].qs[j] + ((w[b].qs[j] >> 4) - 8) * x[b].qs[j + QK / 2];
    s += (float)sumi * (lk_h2f(w[b].d) * lk_h2f(x[b].d));
  }
  return s;
}

static float dot_q4_1(const block_q4_1 *w, const block_q8_1 *x, int64_t nb) {
  float s = 0;
  for (int64_t b = 0; b < nb; b++) {
    int sumi = 0, sumx = 0;
    for (int j = 0; j < QK / 2; j++) {
      sumi += (w[b].qs[j] & 0xF) * x[b].qs[j] + (w[b].qs[j] >> 4) * x[b].qs[j + QK / 2];
      sumx += x[b].qs[j] + x[b].qs[j + QK / 2];
    }
    float dx = lk_h2f(x[b].d);
    // the activation sum is taken exactly from qs rather than from the f16-rounded s field
    s += (float)sumi * (lk_h2f(w[b].d) * dx) + lk_h2f(w[b].m) * (dx * (float)sumx);
  }
  return s;
}

static float dot_q8_0(const block_q8_0 *w, const block_q8_0 *x, int64_t nb) {
  float s = 0;
  for (int64_t b = 0; b < nb; b++) {
    int sumi = 0;
    for (int j = 0; j < QK; j++) sumi += w[b].qs[j] * x[b].qs[j];
    s += (float)sumi * (lk_h2f(w[b].d) * lk_h2f(x[b].d));
  }
  return s;
}

float lk_dot_q4k_scalar(const void *vw, const void *vx, int64_t n) {
  const block_q4_K *w = vw;
  const block_q8_K *x = vx;
  float s = 0;
  for (int64_t b = 0; b < n / QK_K; b++) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      lk_q4k_scale_min(j, w[b].scales, &sc, &m);
      const uint8_t *q = w[b].qs + 32 * (j / 2);
      const int8_t *xs = x[b].qs + 32 * j;
      int d = 0;
      for (int l = 0; l < 32; l++) d += (j & 1 ? q[l] >> 4 : q[l] & 0xF) * xs[l];
      sumi += sc * d;
      summ += m * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
    }
    s += x[b].d * lk_h2f(w[b].d) * (float)sumi - x[b].d * lk_h2f(w[b].dmin) * (float)summ;
  }
  return s;
}

float lk_dot_q6k_scalar(const void *vw, const void *vx, int64_t n) {
  const block_q6_K *w = vw;
  const block_q8_K *x = vx;
  float s = 0;
  for (int64_t b = 0; b < n / QK_K; b++) {
    int sumi = 0;
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = w[b].ql + 64 * h, *qh = w[b].qh + 32 * h;
      const int8_t *xs = x[b].qs + 128 * h;
      int g[8] = {0};  // 16-element group sums of this half
      for (int l = 0; l < 32; l++) {
        int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        g[l / 16] += q1 * xs[l];
        g[2 + l / 16] += q2 * xs[l + 32];
        g[4 + l / 16] += q3 * xs[l + 64];
        g[6 + l / 16] += q4 * xs[l + 96];
      }
      for (int k = 0; k < 8; k++) sumi += w[b].scales[8 * h + k] * g[k];
    }
    s += lk_h2f(w[b].d) * x[b].d * (float)sumi;
  }
  return s;
}

static float dot_float_row(int wtype, const void *w, const float *x, int64_t n) {
  float s = 0;
  if (wtype == LK_F32) {
    const float *f = w;
    for (int64_t i = 0; i < n; i++) s += f[i] * x[i];
  } else if (wtype == LK_F16) {
    const uint16_t *h = w;
    for (int64_t i = 0; i < n; i++) s += lk_h2f(h[i]) * x[i];
  } else {
    const uint16_t *h = w;
    for (int64_t i = 0; i < n; i++) s += lk_bf2f(h[i]) * x[i];
  }
  return s;
}

void lk_mv_f_scalar(int wtype, float *y, const void *W, const float *x, int64_t ncols, int64_t r0, int64_t r1) {
  int64_t rb = lk_row_bytes(wtype, ncols);
  for (int64_t r = r0; r < r1; r++) y[r - r0] = dot_float_row(wtype, (const char *)W + r * rb, x, ncols);
}

/// One weight row · one activation row of the partner type.
static float row_dot(int wtype, const void *w, const void *x, int64_t n) {
  switch (wtype) {
  case LK_Q4_0: return dot_q4_0(w, x, n / QK);
  case LK_Q4_1: return dot_q4_1(w, x, n / QK);
  case LK_Q8_0: return dot_q8_0(w, x, n / QK);
  case LK_Q4_K: return lk_dot_q4k_scalar(w, x, n);
  case LK_Q6_K: return lk_dot_q6k_scalar(w, x, n);
  case LK_F32: case LK_F16: case LK_BF16: return dot_float_row(wtype, w, x, n);
  default: return 0;
  }
}

void lk_matvec_scalar(int wtype, float *y, const void *W, const void *xq, int64_t ncols, int64_t r0, int64_t r1) {
  int64_t rb = lk_row_bytes(wtype, ncols);
  for (int64_t r = r0; r < r1; r++) y[r - r0] = row_dot(wtype, (const char *)W + r * rb, xq, ncols);
}

void lk_matmul_scalar(int wtype, float *Y, int64_t ldy, const void *W, const void *Xq, int64_t xstride, int64_t ntok,
                      int64_t ncols, int64_t r0, int64_t r1) {
  int64_t rb = lk_row_bytes(wtype, ncols);
  for (int64_t r = r0; r < r1; r++)
    for (int64_t t = 0; t < ntok; t++)
      Y[t * ldy + r] = row_dot(wtype, (const char *)W + r * rb, (const char *)Xq + t * xstride, ncols);
}
