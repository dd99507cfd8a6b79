// Quantization of float rows: activations to their dot-product partner types (Q8_0, Q8_1, Q8_K)
// and weights (Q4_0, Q4_1, Q8_0 as ggml's reference quantizers; Q4_K and Q6_K with a plain
// min/max fit, good enough for tests and tools). The SIMD activation quantizers in
// quantize_x86.c produce the same bytes as the scalar ones here.
#include "internal.h"
#include <float.h>

#pragma clang fp contract(off)

static void quant_q8_0(const float *x, block_q8_0 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK) {
    float amax = 0;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = lk_f2h(d);
    for (int j = 0; j < QK; j++) y[i].qs[j] = (int8_t)lk_round_away(x[j] * id);
  }
}

static void quant_q8_1(const float *x, block_q8_1 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK) {
    float amax = 0;
    for (int j = 0; j < QK; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < QK; j++) {
      int q = lk_round_away(x[j] * id);
      y[i].qs[j] = (int8_t)q;
      sum += q;
    }
    y[i].d = lk_f2h(d);
    y[i].s = lk_f2h(d * (float)sum);
  }
}

static void quant_q8_K(const float *x, block_q8_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float amax = 0, max = 0;
    for (int j = 0; j < QK_K; j++) {
      float ax = fabsf(x[j]);
      if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (amax == 0) {
      memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    float iscale = -127.0f / max;
    for (int j = 0; j < QK_K; j++) {
      int v = lk_nearest_int(iscale * x[j]);
      y[i].qs[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    for (int g = 0; g < QK_K / 16; g++) {
      int s = 0;
      for (int l = 0; l < 16; l++) s += y[i].qs[16 * g + l];
      y[i].bsums[g] = (int16_t)s;
    }
    y[i].d = 1.0f / iscale;
  }
}

void lk_q8_1_to_q8_0(const void *src, void *dst, int64_t n) {
  const block_q8_1 *s = src;
  block_q8_0 *d = dst;
  for (int64_t i = 0; i < n / QK; i++) {
    d[i].d = s[i].d;
    memcpy(d[i].qs, s[i].qs, QK);
  }
}

void lk_quant_act_scalar(int atype, const float *x, void *xq, int64_t n) {
  switch (atype) {
  case LK_Q8_0: quant_q8_0(x, xq, n / QK); break;
  case LK_Q8_1: quant_q8_1(x, xq, n / QK); break;
  case LK_Q8_K: quant_q8_K(x, xq, n / QK_K); break;
  default: memmove(xq, x, (size_t)n * 4); break;
  }
}

// ---- weight quantizers ---------------------------------------------------------------------
static void quant_q4_0(const float *x, block_q4_0 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK) {
    float amax = 0, max = 0;
    for (int j = 0; j < QK; j++)
      if (amax < fabsf(x[j])) { amax = fabsf(x[j]); max = x[j]; }
    float d = max / -8, id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = lk_f2h(d);
    for (int j = 0; j < QK / 2; j++) {
      int a = (int8_t)(x[j] * id + 8.5f), b = (int8_t)(x[j + QK / 2] * id + 8.5f);
      y[i].qs[j] = (uint8_t)((a < 15 ? a : 15) | ((b < 15 ? b : 15) << 4));
    }
  }
}

static void quant_q4_1(const float *x, block_q4_1 *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK) {
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
      if (x[j] < min) min = x[j];
      if (x[j] > max) max = x[j];
    }
    float d = (max - min) / 15, id = d != 0 ? 1.0f / d : 0.0f;
    y[i].d = lk_f2h(d);
    y[i].m = lk_f2h(min);
    for (int j = 0; j < QK / 2; j++) {
      int a = (int8_t)((x[j] - min) * id + 0.5f), b = (int8_t)((x[j + QK / 2] - min) * id + 0.5f);
      y[i].qs[j] = (uint8_t)((a < 15 ? a : 15) | ((b < 15 ? b : 15) << 4));
    }
  }
}

LK_INLINE int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/// Q4_K by a plain min/max fit per 32-element sub-block (not ggml's iterative search).
static void quant_q4_K(const float *x, block_q4_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float scale[8], mins[8], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
      float lo = 0, hi = 0;  // the range always includes 0: mins are stored as non-negative offsets
      for (int l = 0; l < 32; l++) {
        float v = x[32 * j + l];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      scale[j] = (hi - lo) / 15;
      mins[j] = -lo;
      if (scale[j] > max_scale) max_scale = scale[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    y[i].d = lk_f2h(max_scale / 63);
    y[i].dmin = lk_f2h(max_min / 63);
    float d = lk_h2f(y[i].d), dmin = lk_h2f(y[i].dmin);
    uint8_t sc[8], m[8];
    for (int j = 0; j < 8; j++) {
      sc[j] = (uint8_t)(d > 0 ? clampi(lk_nearest_int(scale[j] / d), 0, 63) : 0);
      m[j] = (uint8_t)(dmin > 0 ? clampi(lk_nearest_int(mins[j] / dmin), 0, 63) : 0);
    }
    for (int j = 0; j < 4; j++) {
      y[i].scales[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
      y[i].scales[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
      y[i].scales[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
    }
    uint8_t q[QK_K];
    for (int j = 0; j < 8; j++) {
      float ds = d * (float)sc[j], dm = dmin * (float)m[j];
      for (int l = 0; l < 32; l++)
        q[32 * j + l] = (uint8_t)(ds > 0 ? clampi(lk_nearest_int((x[32 * j + l] + dm) / ds), 0, 15) : 0);
    }
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) y[i].qs[32 * c + l] = (uint8_t)(q[64 * c + l] | (q[64 * c + 32 + l] << 4));
  }
}

/// Q6_K by a plain absmax fit per 16-element group.
static void quant_q6_K(const float *x, block_q6_K *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, x += QK_K) {
    float scale[16], max_abs_scale = 0, max_scale = 0;
    for (int g = 0; g < 16; g++) {
      float amax = 0, max = 0;
      for (int l = 0; l < 16; l++)
        if (fabsf(x[16 * g + l]) > amax) { amax = fabsf(x[16 * g + l]); max = x[16 * g + l]; }
      scale[g] = max / -32;
      if (fabsf(scale[g]) > max_abs_scale) { max_abs_scale = fabsf(scale[g]); max_scale = scale[g]; }
    }
    float dd = max_scale / -128;
    y[i].d = lk_f2h(dd);
    float d = lk_h2f(y[i].d);
    uint8_t q[QK_K];
    for (int g = 0; g < 16; g++) {
      int s = d != 0 ? clampi(lk_nearest_int(scale[g] / d), -128, 127) : 0;
      y[i].scales[g] = (int8_t)s;
      float ds = d * (float)s;
      for (int l = 0; l < 16; l++)
        q[16 * g + l] = (uint8_t)(ds != 0 ? clampi(lk_nearest_int(x[16 * g + l] / ds) + 32, 0, 63) : 32);
    }
    for (int h = 0; h < 2; h++) {
      const uint8_t *qq = q + 128 * h;
      uint8_t *ql = y[i].ql + 64 * h, *qh = y[i].qh + 32 * h;
      for (int l = 0; l < 32; l++) {
        ql[l] = (uint8_t)((qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4));
        ql[l + 32] = (uint8_t)((qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4));
        qh[l] = (uint8_t)((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) | ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
      }
    }
  }
}

void lk_quantize_row(int type, const float *x, void *dst, int64_t n) {
  switch (type) {
  case LK_F32: memmove(dst, x, (size_t)n * 4); break;
  case LK_F16: {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = lk_f2h(x[i]);
    break;
  }
  case LK_BF16: {
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = lk_f2bf(x[i]);
    break;
  }
  case LK_Q4_0: quant_q4_0(x, dst, n / QK); break;
  case LK_Q4_1: quant_q4_1(x, dst, n / QK); break;
  case LK_Q8_0: case LK_Q8_1: case LK_Q8_K: lk_quant_act_scalar(type, x, dst, n); break;
  case LK_Q4_K: quant_q4_K(x, dst, n / QK_K); break;
  case LK_Q6_K: quant_q6_K(x, dst, n / QK_K); break;
  default: break;
  }
}
