// The two halves of a LoRA product y += s · B(A x) for a few rows, with A and Bᵀ in F16, F32 or Q8_0.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Shrink: t[i * ldt + k] = Σ_j A[k, j] · x[i * ldx + j] for rows i < ntok, k < rank.
/// A is (rank, cols) row-major, F16 (type 1) or F32 (type 0).
void lk_lora_shrink(float *t, int64_t ldt, const float *x, int64_t ldx, int64_t ntok, int type, const void *a,
                    int64_t rank, int64_t cols);

/// Expand: y[i * ldy + c] += scale · Σ_k t[i * ldt + k] · Bt[k, c] for rows i < ntok and columns
/// c in [c0, c1). Bt is Bᵀ, (rank, rows) row-major, F16 (type 1) or F32 (type 0).
void lk_lora_expand(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, int type, const void *bt,
                    int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale);

/// Shrink with A in Q8_0 (rank rows of cols, cols a multiple of 32): t as above, from x rows
/// already quantized by lk_quantize_act(LK_Q8_0, ...), xstride bytes apart. It is lk_matmul, so a
/// row's result does not depend on the other rows.
void lk_lora_shrink_q8(float *t, int64_t ldt, const void *xq, int64_t xstride, int64_t ntok, const void *a,
                       int64_t rank, int64_t cols);

/// Expand with Bᵀ in Q8_0 panels: for each block of 32 of the `rows` columns, its `rank` blocks
/// (one per k) one after another, i.e. block (k, c / 32) at index (c / 32) · rank + k. y as above
/// for columns [c0, c1), both multiples of 32. Each row's result depends on that row alone.
void lk_lora_expand_q8(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, const void *bt,
                       int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale);

/// Bᵀ in Q8_0 panels (the layout lk_lora_expand_q8 reads) straight from B, (rows, rank) row-major
/// F32, rows a multiple of 32: block (k, c) holds B[32c .. 32c + 31, k], quantized as
/// lk_quantize_act(LK_Q8_0, ...) would quantize those 32 values, at block index c · rank + k.
void lk_lora_pack_bt_q8(const float *b, int64_t rows, int64_t rank, void *dst);

#ifdef __cplusplus
}
#endif
