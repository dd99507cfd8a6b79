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

/// The largest rank of Q8 factors (higher ranks are served in F16).
#define LK_LORA_Q8_MAX_RANK 256
/// Expand with B in Q8 (lk_lora_pack_b_q8's layout): y as above for columns [c0, c1), both
/// multiples of 16, with each row of t quantized to int8 (scale max|t| / 127) and the rank sum
/// an exact integer dot; y = fma(float(dot), e_c · (scale · dt), y), the same on every ISA. Each
/// row's result depends on that row alone.
void lk_lora_expand_q8(float *y, int64_t ldy, const float *t, int64_t ldt, int64_t ntok, const void *b,
                       int64_t rank, int64_t rows, int64_t c0, int64_t c1, float scale);
/// Bytes of B (rows x rank, rows a multiple of 16, rank <= LK_LORA_Q8_MAX_RANK) in Q8.
int64_t lk_lora_b_q8_bytes(int64_t rows, int64_t rank);
/// B, (rows, rank) row-major F32, into dst in Q8: each row's rank values one int8 block (scale
/// amax / 127 as a half, rounding half away from zero), by groups of 16 rows for VNNI (lora.c
/// describes the layout).
void lk_lora_pack_b_q8(const float *b, int64_t rows, int64_t rank, void *dst);
/// B back from lk_lora_pack_b_q8's layout, (rows, rank) row-major, as the expand uses it.
void lk_lora_unpack_b_q8(const void *src, int64_t rows, int64_t rank, float *b);
/// Bytes of A (rank rows of cols in Q8_0, cols a multiple of 32) prepacked for
/// lk_lora_shrink_q8_packed: one 576-byte record per 16 rows and 32 columns. 0 where the ISA in
/// force is below AVX-512: then A stays in rows for lk_lora_shrink_q8.
int64_t lk_lora_a_q8_packed_bytes(int64_t rank, int64_t cols);
/// A's Q8_0 rows into out (lk_lora_a_q8_packed_bytes of it, 64-byte aligned); nothing where the
/// CPU lacks AVX-512.
void lk_lora_pack_a_q8(const void *a, int64_t rank, int64_t cols, void *out);
/// A's Q8_0 rows back from the packed records (exactly the rows packed).
void lk_lora_unpack_a_q8(const void *apk, int64_t rank, int64_t cols, void *a);
/// lk_lora_shrink_q8 over A prepacked: the same results bit for bit, from one linear stream of A
/// instead of rank interleaved rows.
void lk_lora_shrink_q8_packed(float *t, int64_t ldt, const void *xq, int64_t xstride, int64_t ntok, const void *apk,
                              int64_t rank, int64_t cols);
#ifdef __cplusplus
}
#endif
