// Attention of one query head over a run of cached keys and values (decode and short batches).
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// out[0..hd) = Σ_t p_t · V[t], p = softmax_t(scale · q·K[t]) over t in [0, len).
/// K and V rows are `ld` floats apart; `scores` is scratch of len floats. AVX-512 / AVX2 / scalar
/// by the ISA in force (lk_set_isa); allocates nothing.
void lk_attention_head(float *out, const float *q, const float *K, const float *V, int64_t ld, int64_t len,
                       int64_t hd, float scale, float *scores);

/// The same over a cache of IEEE halves (F16): K and V rows `ld` halves apart. AVX2 (also on
/// AVX-512 machines) or scalar.
void lk_attention_head_f16(float *out, const float *q, const uint16_t *K, const uint16_t *V, int64_t ld,
                           int64_t len, int64_t hd, float scale, float *scores);

#ifdef __cplusplus
}
#endif
