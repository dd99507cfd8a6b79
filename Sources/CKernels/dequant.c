// Reference dequantization: plain scalar C, one element at a time, in exactly the operation
// order of ggml's reference dequantizers (and gguf-py's numpy versions). Never SIMD, never fused:
// the SIMD dequantizers must equal these bit for bit.
#include "internal.h"

#pragma clang fp contract(off)

static void deq_q4_0(const block_q4_0 *b, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK) {
    float d = lk_h2f(b[i].d);
    for (int j = 0; j < QK / 2; j++) {
      y[j] = (float)((b[i].qs[j] & 0xF) - 8) * d;
      y[j + QK / 2] = (float)((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

static void deq_q4_1(const block_q4_1 *b, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK) {
    float d = lk_h2f(b[i].d), m = lk_h2f(b[i].m);
    for (int j = 0; j < QK / 2; j++) {
      y[j] = (float)(b[i].qs[j] & 0xF) * d + m;
      y[j + QK / 2] = (float)(b[i].qs[j] >> 4) * d + m;
    }
  }
}

static void deq_q8_0(const block_q8_0 *b, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK) {
    float d = lk_h2f(b[i].d);
    for (int j = 0; j < QK; j++) y[j] = (float)b[i].qs[j] * d;
  }
}

static void deq_q8_1(const block_q8_1 *b, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK) {
    float d = lk_h2f(b[i].d);
    for (int j = 0; j < QK; j++) y[j] = (float)b[i].qs[j] * d;
  }
}

static void deq_q4_K(const block_q4_K *b, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    float d = lk_h2f(b[i].d), dmin = lk_h2f(b[i].dmin);
    const uint8_t *q = b[i].qs;
    for (int c = 0; c < 4; c++, q += 32) {  // 64 elements: sub-blocks 2c (low nibbles), 2c+1 (high)
      uint8_t sc, m;
      lk_q4k_scale_min(2 * c, b[i].scales, &sc, &m);
      float d1 = d * (float)sc, m1 = dmin * (float)m;
      lk_q4k_scale_min(2 * c + 1, b[i].scales, &sc, &m);
      float d2 = d * (float)sc, m2 = dmin * (float)m;
      for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
  }
}

static void deq_q6_K(const block_q6_K *b, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    float d = lk_h2f(b[i].d);
    const uint8_t *ql = b[i].ql, *qh = b[i].qh;
    const int8_t *sc = b[i].scales;
    for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; l++) {
        int is = l / 16;
        int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * (float)sc[is] * (float)q1;
        y[l + 32] = d * (float)sc[is + 2] * (float)q2;
        y[l + 64] = d * (float)sc[is + 4] * (float)q3;
        y[l + 96] = d * (float)sc[is + 6] * (float)q4;
      }
    }
  }
}

static void deq_q8_K(const block_q8_K *b, float *y, int64_t nb) {
  for (int64_t i = 0; i < nb; i++, y += QK_K)
    for (int j = 0; j < QK_K; j++) y[j] = b[i].d * (float)b[i].qs[j];
}

void lk_dequant_ref(int type, const void *src, float *dst, int64_t n) {
  int64_t be = lk_block_elems(type), nb = be ? n / be : 0;
  switch (type) {
  case LK_F32: memmove(dst, src, (size_t)n * 4); break;
  case LK_F16: {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lk_h2f(h[i]);
    break;
  }
  case LK_BF16: {
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = lk_bf2f(h[i]);
    break;
  }
  case LK_Q4_0: deq_q4_0(src, dst, nb); break;
  case LK_Q4_1: deq_q4_1(src, dst, nb); break;
  case LK_Q8_0: deq_q8_0(src, dst, nb); break;
  case LK_Q8_1: deq_q8_1(src, dst, nb); break;
  case LK_Q4_K: deq_q4_K(src, dst, nb); break;
  case LK_Q6_K: deq_q6_K(src, dst, nb); break;
  case LK_Q8_K: deq_q8_K(src, dst, nb); break;
  default: memset(dst, 0, (size_t)n * 4); break;
  }
}
