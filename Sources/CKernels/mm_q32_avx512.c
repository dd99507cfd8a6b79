// AVX-512 VNNI (and AMX) matmul of Q4_0 / Q4_1 / Q8_0 weights (several activation rows): each 16-row
// tile transposed once into L1, token groups over it; see q32_avx512.h for the layouts and the
// float order it shares with the matvec.
#include "q32_avx512.h"

#if LK_X86

/// Transposes blocks [b4, b4 + nb) (nb <= 4) of the 16 rows into pk (8 vectors per block) and
/// their scales into dws / cws (16 floats per block), each from its start.
/// natural: the AMX order instead, vector k of a block holding elements 4k..4k+3 of every row
/// (the B tile of a 32-element step: row k pairs with activation bytes 4k..4k+3).
LK_AVX512 LK_INLINE void pack_run(int wtype, int natural, const uint8_t *const w[16], int b4, int nb, __m512i *pk,
                                  float *dws, float *cws, lk_pfspread *pfs) {
  __m512 dw[4], cw[4];
  scales16(wtype, w, b4, nb, dw, cw);
  for (int k = 0; k < nb; k++) {
    pf_step(wtype, pfs);
    _mm512_store_ps(dws + 16 * k, dw[k]);
    if (wtype == LK_Q4_1) _mm512_store_ps(cws + 16 * k, cw[k]);
    if (natural) {
      __m512i v[8];
      tile16(wtype, w, b4 + k, v);
      for (int g = 0; g < 4; g++) {  // v[2g]: elements 4g.., v[2g + 1]: 16 + 4g..
        _mm512_store_si512(pk + 8 * k + g, v[2 * g]);
        _mm512_store_si512(pk + 8 * k + 4 + g, v[2 * g + 1]);
      }
    } else {
      tile16(wtype, w, b4 + k, pk + 8 * k);
    }
  }
}

/// Blocks [0, nkb) of the 16 rows, packed as pack_run does, four at a time.
LK_AVX512 LK_INLINE void pack_tile(int wtype, int natural, const uint8_t *const w[16], int nkb, __m512i *pk,
                                   float *dws, float *cws, const uint8_t *pf, const uint8_t *pfend) {
  lk_pfspread pfs = pf_spread(wtype, pf, pfend, nkb);
  for (int b4 = 0; b4 < nkb; b4 += 4)
    pack_run(wtype, natural, w, b4, nkb - b4 < 4 ? nkb - b4 : 4, pk + 8 * b4, dws + 16 * b4, cws + 16 * b4, &pfs);
}

#define PACK_INST(T)                                                                                           \
  static LK_AVX512 __attribute__((noinline)) void pack_##T(const uint8_t *const w[16], int nkb, __m512i *pk,   \
                                                           float *dws, float *cws, const uint8_t *pf,          \
                                                           const uint8_t *pfend) {                             \
    pack_tile(LK_##T, 0, w, nkb, pk, dws, cws, pf, pfend);                                                     \
  }                                                                                                            \
  static LK_AVX512 __attribute__((noinline)) void pack_nat_##T(const uint8_t *const w[16], int nkb,            \
                                                               __m512i *pk, float *dws, float *cws,            \
                                                               const uint8_t *pf, const uint8_t *pfend) {      \
    pack_tile(LK_##T, 1, w, nkb, pk, dws, cws, pf, pfend);                                                     \
  }
PACK_INST(Q4_0)
PACK_INST(Q4_1)
PACK_INST(Q8_0)

// ---- prepacked tiles (AVX-512 VNNI and AMX) -----------------------------------------------------
// lk_prepack stores every 16-row tile of a matrix as pack_nat packs it, once, so that the
// products read one linear stream instead of transposing 16 row streams at every call. Per tile,
// its blocks in order, one record each (a multiple of 64 bytes):
//   Q4_0 / Q4_1: the 4 natural-order vectors with element 4g..4g+3 of every row in the low nibbles
//                of vector g and element 16+4g.. in the high ones (256 bytes), the 16 scales as
//                halves (32), Q4_1 the 16 mins as halves (32); 320 bytes, W's own size.
//   Q8_0:        the 8 natural-order vectors (512 bytes, the +128 offset applied), the 16 scales as
//                halves (32), padding to 576 (W: 544).
// The halves are the block headers' own, so unpacking gives exactly what pack_nat gives.
LK_INLINE int64_t pre_record(int wtype) { return lk_record_bytes(wtype); }
enum { PRE_PF_BYTES = 2048 };

/// The records run on into the next tiles: each block asks for its own size 2 KB ahead, into L1
/// (cold 1536x576 Q4_1 / Q8_0, one thread: 34-39 / 34-40 ns per tile and block against 40-45 /
/// 43-49 at 16 KB into L2 once per run; bench/kernels.c-style runs).
LK_INLINE void prefetch_record(const uint8_t *rec, int64_t rb) {
  for (int64_t o = 0; o < rb; o += 64) _mm_prefetch((const char *)rec + PRE_PF_BYTES + o, _MM_HINT_T0);
}

/// The scales of Q8_0 records [0, nb) into dws, each record prefetched ahead.
LK_AVX512 LK_INLINE void scales_of_records(const uint8_t *rec, int nb, float *dws) {
  const int64_t rb = pre_record(LK_Q8_0);
  for (int k = 0; k < nb; k++, rec += rb) {
    prefetch_record(rec, rb);
    _mm512_store_ps(dws + 16 * k, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(rec + 512))));
  }
}

/// Blocks [0, nb) of a prepacked tile (rec: its first record) into pk / dws / cws as pack_nat
/// would have packed them.
LK_AVX512 LK_INLINE void unpack_records(int wtype, const uint8_t *rec, int nb, __m512i *pk, float *dws, float *cws) {
  const int64_t rb = pre_record(wtype);
  if (wtype == LK_Q8_0) {  // the vectors as they are, and the scales
    scales_of_records(rec, nb, dws);
    for (int k = 0; k < nb; k++)
      for (int g = 0; g < 8; g++) _mm512_store_si512(pk + 8 * k + g, _mm512_load_si512((const __m512i *)(rec + k * rb) + g));
    return;
  }
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int k = 0; k < nb; k++, rec += rb) {
    prefetch_record(rec, rb);
    for (int g = 0; g < 4; g++) {
      const __m512i v = _mm512_load_si512((const __m512i *)rec + g);
      _mm512_store_si512(pk + 8 * k + g, _mm512_and_si512(v, m4));
      _mm512_store_si512(pk + 8 * k + 4 + g, _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
    }
    _mm512_store_ps(dws + 16 * k, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(rec + 256))));
    if (wtype == LK_Q4_1) _mm512_store_ps(cws + 16 * k, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(rec + 288))));
  }
}

#define UNPACK_INST(T)                                                                                         \
  static LK_AVX512 __attribute__((noinline)) void unpack_##T(const uint8_t *rec, int nb, __m512i *pk, float *dws, \
                                                             float *cws) {                                     \
    unpack_records(LK_##T, rec, nb, pk, dws, cws);                                                             \
  }
UNPACK_INST(Q4_0)
UNPACK_INST(Q4_1)
UNPACK_INST(Q8_0)

/// Vector k (0..7) of a prepacked record in the natural order: Q8_0 as stored, Q4 the low
/// (k < 4) or high nibbles of record vector k % 4.
LK_AVX512 LK_INLINE __m512i record_vec(int wtype, const uint8_t *r, int k) {
  if (wtype == LK_Q8_0) return _mm512_load_si512((const __m512i *)r + k);
  const __m512i v = _mm512_load_si512((const __m512i *)r + (k & 3));
  return _mm512_and_si512(k < 4 ? v : _mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F));
}

/// The tile · NT tokens: acc[t] = the chunk's results of token t (rows in lanes).
/// xr[t]: token t's activation row at the chunk; dx / c: its coefficients, ldc apart per token.
/// order: 0 the tile packed in pk / dws / cws in the VNNI order; 1 packed in the AMX order (vector
/// k pairs with activation bytes 4k..4k+3); 2 read in place from its prepacked records (rec: the
/// chunk's first), which hold the AMX order and the scales as halves: the same integers and float
/// steps, so the same results to the bit, without the transposed copy.
LK_AVX512 LK_INLINE void mm_tile(int wtype, int order, int NT, const __m512i *pk, const float *dws, const float *cws,
                                 const uint8_t *rec, const uint8_t *const *xr, const float *dx, const xcorr *c, int ldc,
                                 int nkb, __m512 *acc) {
  const int xbs = xbytes(wtype), xoff = xqs_off(wtype), qb = wtype == LK_Q8_0 ? 512 : 256;
  const int64_t rb = pre_record(wtype);
  for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_ps();
  for (int b = 0; b < nkb; b++, rec += order == 2 ? rb : 0) {
    if (order == 2) prefetch_record(rec, rb);
    __m512i id[NT];
    for (int t = 0; t < NT; t++) id[t] = _mm512_setzero_si512();
    for (int k = 0; k < 8; k++) {
      __m512i v = order == 2 ? record_vec(wtype, rec, k) : _mm512_load_si512(pk + 8 * b + k);
      const int xo = order ? 4 * k : xpair_off(k);
      for (int t = 0; t < NT; t++) id[t] = _mm512_dpbusd_epi32(id[t], v, bcast4(xr[t] + b * xbs + xoff + xo));
    }
    __m512 dw, cw;
    if (order == 2) {
      dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(rec + qb)));
      cw = wtype == LK_Q4_1 ? _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(rec + qb + 32))) : dw;
    } else {
      dw = _mm512_load_ps(dws + 16 * b), cw = wtype == LK_Q4_1 ? _mm512_load_ps(cws + 16 * b) : dw;
    }
    for (int t = 0; t < NT; t++) acc[t] = block_step(wtype, acc[t], id[t], dw, cw, dx + t * ldc + b, c + t * ldc + b);
  }
}

#define MM_INST(T, ORD, NT)                                                                                    \
  static LK_AVX512 __attribute__((noinline)) void mm_##T##_##ORD##NT(                                          \
      const __m512i *pk, const float *dws, const float *cws, const uint8_t *rec, const uint8_t *const *xr,     \
      const float *dx, const xcorr *c, int ldc, int nkb, float *Y, int64_t ldy, int nr, int first) {           \
    __m512 acc[NT];                                                                                            \
    mm_tile(LK_##T, ORD, NT, pk, dws, cws, rec, xr, dx, c, ldc, nkb, acc);                                     \
    for (int t = 0; t < NT; t++) store16(Y + t * ldy, acc[t], nr, first);                                      \
  }
// mm_T_0NT: VNNI order, NT tokens; mm_T_1NT: the AMX order (the 1-5 tokens a chunk has left after
// its tile groups); mm_T_2NT: the prepacked records in place (no AMX)
#define MM_INST_T(T)                                                                                           \
  MM_INST(T, 0, 8) MM_INST(T, 0, 4) MM_INST(T, 0, 2) MM_INST(T, 0, 1) MM_INST(T, 1, 4) MM_INST(T, 1, 2)         \
  MM_INST(T, 1, 1) MM_INST(T, 2, 8) MM_INST(T, 2, 4) MM_INST(T, 2, 2) MM_INST(T, 2, 1)
MM_INST_T(Q4_0)
MM_INST_T(Q4_1)
MM_INST_T(Q8_0)

// ---- AMX ------------------------------------------------------------------------------------
// One 32-element block of a 16-row tile for nt <= 16 tokens is one tile multiply: A = the nt
// tokens' activation bytes of the block (nt rows of 32 signed bytes, straight from the
// activation rows), B = the block's 8 natural-order vectors (8 rows of 16 weight rows x 4
// unsigned bytes), C = the int32 block dots, token t in row t with the weight rows in the
// VNNI tile's lane order. TDPBSUD gives exactly the integers vpdpbusd gives, and C's rows then
// take the same float step, so results do not change by a bit. Tiles: 0-3 = C; 4, 5 = A;
// 6, 7 = B.

typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} amx_cfg;

/// The tile shape this thread has loaded (tokens per A / C tile), 0 if none. Nothing else in
/// lorad's threads touches the tile registers (OpenBLAS's sgemm does not), so it stays loaded.
static _Thread_local int amx_rows;

LK_AMX LK_INLINE void amx_config(int nt) {
  if (amx_rows == nt) return;
  _Alignas(64) amx_cfg cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.palette = 1;
  for (int i = 0; i < 4; i++) cfg.rows[i] = (uint8_t)nt, cfg.colsb[i] = 64;  // C: nt tokens x 16 int32
  for (int i = 4; i < 6; i++) cfg.rows[i] = (uint8_t)nt, cfg.colsb[i] = 32;  // A: nt tokens x 32 bytes
  for (int i = 6; i < 8; i++) cfg.rows[i] = 8, cfg.colsb[i] = 64;            // B: 8 x (16 rows x 4 bytes)
  _tile_loadconfig(&cfg);
  amx_rows = nt;
}

// Fewer tokens than this take the VNNI kernels: a tile multiply costs the same for 1 token as
// for 16. With 16 token lanes of float steps, below 6 the VNNI products were cheaper
// (bench/kernels.c-style runs, 2026-12-05: 5 tokens 7.8 ms both, 6 tokens 7.6-7.9 AMX vs 9.0-9.4
// VNNI); with 8 lanes for at most 8 tokens, from 4 (lorad bench decode, 2026-12-06: 5 sequences
// 853-855 -> 925-958 t/s, 4 sequences 762-766 -> 769-786; 3 sequences no better).
enum { AMX_MIN_TOKENS = 4 };
// Chunks of up to this many tokens run each group of 16 through amx_tile packing as it goes, again
// for each; larger ones pack each tile once for all their groups. (One thread, a model's Q4_1
// layers and Q8_0 head from L2, 2026-12-06: 20 / 24 / 32 / 64 tokens 13.4 / 13.8 / 15.2 / 32.5 ms
// against 16.0 / 16.4 / 17.9 / 34.2 packing once; 256 tokens 154 against 147.)
enum { AMX_FUSED_MAX = 64 };

/// The float steps of block b for token lanes [lo, hi): its int32 dots in in (token t's at
/// in + 16 t), the weight coefficients in dw / cw, token t's activation coefficients at
/// dx / c + ldc t + b.
LK_AMX LK_INLINE void amx_floats(int wtype, int lo, int hi, const int32_t *in, __m512 dw, __m512 cw,
                                 const float *dx, const xcorr *c, int ldc, int b, __m512 acc[16]) {
#pragma clang loop unroll(full)
  for (int t = 0; t < 16; t++)  // unrolled with acc in registers; lanes outside [lo, hi) skipped
    if (t >= lo && t < hi)
      acc[t] = block_step(wtype, acc[t], _mm512_load_si512(in + 16 * t), dw, cw, dx + t * ldc + b, c + t * ldc + b);
}

/// One 16-row tile (natural order) · nt <= 16 tokens whose activation bytes start at x0 (the
/// first block's qs), xstride apart, its results stored for the nt tokens.
/// The blocks' B vectors come from one of:
///   pk / dws / cws: the whole tile packed beforehand (chunks of more than AMX_FUSED_MAX tokens
///                   pack a tile once for all their groups);
///   rec (Q8_0): the prepacked records, read in place by the tile loads;
///   rec (Q4):   the prepacked records, unpacked two blocks ahead into a ring of 8;
///   w:          the 16 rows, packed two blocks ahead (pack_run).
/// Block by block, interleaved so that the tile unit and the vector units work at the same time:
/// block b's product goes to C tile b % 4, is stored one block later, and its float steps run one
/// block after that, in two halves around that next store. (Runs of four products, each stored
/// right behind it, then the float steps of the four blocks, with packing one run ahead, kept
/// the units waiting on each other: one thread, a model's Q4_1 layers and Q8_0 head from L2,
/// 2026-12-06, block by block 4 / 8 / 16 tokens 4.3 / 4.6 / 7.3 ms against 6.1 / 6.3 / 7.6.)
/// The float steps run for lanes token lanes whatever nt (8 for at most 8 tokens, else 16, a
/// constant at each instantiation; lanes past nt read zeroed coefficients and C rows the tile
/// never stored, and are not stored): with a constant count they unroll with acc in registers,
/// where a loop to nt kept acc in memory and took ~1.8x as long (the float steps alone 43
/// against 23 ns per tile and block, 1536x576 Q4_1 in L2).
LK_AMX LK_INLINE void amx_tile(int wtype, int lanes, const __m512i *pk, const float *dws, const float *cws,
                               const uint8_t *const w[16], const uint8_t *rec, int nkb, const uint8_t *x0,
                               int64_t xstride, const float *dx, const xcorr *c, int ldc, float *Y, int64_t ldy,
                               int nt, int nr, int first, const uint8_t *pf, const uint8_t *pfend) {
  const int xbs = xbytes(wtype);
  _Alignas(64) int32_t cb[4][16 * 16];
  _Alignas(64) __m512i ring[8][8];
  _Alignas(64) float dring[8][16], cring[8][16];
  lk_pfspread pfs = pf_spread(wtype, pf, pfend, nkb);
  __m512 acc[16];
  for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
  const int64_t rb = pre_record(wtype);
  const int direct = !pk && rec && wtype == LK_Q8_0;
#define AHEAD 2
#define STAGE(b)                                                                                  \
  if (!pk && (b) < nkb) {                                                                         \
    const int s_ = (b) & 7;                                                                       \
    if (direct) scales_of_records(rec + (b) * rb, 1, dring[s_]);                                  \
    else if (rec) unpack_records(wtype, rec + (b) * rb, 1, ring[s_], dring[s_], cring[s_]);       \
    else pack_run(wtype, 1, w, (b), 1, ring[s_], dring[s_], cring[s_], &pfs);                     \
  }
#define FLOATS(b, j, from, to)                                                                    \
  if ((b) >= 0 && (b) < nkb) {                                                                    \
    const float *d_ = pk ? dws + 16 * (b) : dring[(b) & 7], *c_ = pk ? cws + 16 * (b) : cring[(b) & 7]; \
    const __m512 dw_ = _mm512_load_ps(d_), cw_ = wtype == LK_Q4_1 ? _mm512_load_ps(c_) : dw_;      \
    amx_floats(wtype, from, to, cb[j], dw_, cw_, dx, c, ldc, (b), acc);                            \
  }
  // block b at C tile C = b % 4 (A, B tiles alternating); Cp / jp: block b - 1's; jpp: b - 2's
#define BLOCK(b, C, A, B, Cp, jp, jpp)                                                            \
  STAGE((b) + AHEAD)                                                                              \
  if ((b) < nkb) {                                                                                \
    _tile_zero(C);                                                                                \
    _tile_loadd(A, x0 + (int64_t)(b) * xbs, xstride);                                             \
    _tile_loadd(B, pk ? (const void *)(pk + 8 * (b)) : direct ? (const void *)(rec + (b) * rb)     \
                                                            : (const void *)ring[(b) & 7], 64);   \
    _tile_dpbsud(C, A, B);                                                                        \
  }                                                                                               \
  FLOATS((b) - 2, jpp, 0, lanes / 2)                                                              \
  if ((b) >= 1 && (b) - 1 < nkb) _tile_stored(Cp, cb[jp], 64);                                   \
  FLOATS((b) - 2, jpp, lanes / 2, lanes)
  for (int b = 0; b < AHEAD; b++) STAGE(b)
  for (int b = 0; b < nkb + 2; b += 4) {
    BLOCK(b, 0, 4, 6, 3, 3, 2)
    BLOCK(b + 1, 1, 5, 7, 0, 0, 3)
    BLOCK(b + 2, 2, 4, 6, 1, 1, 0)
    BLOCK(b + 3, 3, 5, 7, 2, 2, 1)
  }
#undef AHEAD
#undef STAGE
#undef FLOATS
#undef BLOCK
  for (int t = 0; t < nt; t++) store16(Y + t * ldy, acc[t], nr, first);
}

#define AMX_INST(T)                                                                                              \
  static LK_AMX __attribute__((noinline)) void amx_##T(                                                           \
      const __m512i *pk, const float *dws, const float *cws, const uint8_t *const w[16], const uint8_t *rec,      \
      int nkb, const uint8_t *x0, int64_t xstride, const float *dx, const xcorr *c, int ldc, float *Y,            \
      int64_t ldy, int nt, int nr, int first, const uint8_t *pf, const uint8_t *pfend) {                          \
    amx_config(nt);                                                                                               \
    if (nt <= 8)                                                                                                  \
      amx_tile(LK_##T, 8, pk, dws, cws, w, rec, nkb, x0, xstride, dx, c, ldc, Y, ldy, nt, nr, first, pf, pfend);  \
    else                                                                                                          \
      amx_tile(LK_##T, 16, pk, dws, cws, w, rec, nkb, x0, xstride, dx, c, ldc, Y, ldy, nt, nr, first, pf, pfend); \
  }
AMX_INST(Q4_0)
AMX_INST(Q4_1)
AMX_INST(Q8_0)

typedef void (*amx_fn)(const __m512i *, const float *, const float *, const uint8_t *const[16], const uint8_t *, int,
                       const uint8_t *, int64_t, const float *, const xcorr *, int, float *, int64_t, int, int, int,
                       const uint8_t *, const uint8_t *);
typedef void (*unpack_fn)(const uint8_t *, int, __m512i *, float *, float *);
typedef void (*mm_tile_fn)(const __m512i *, const float *, const float *, const uint8_t *, const uint8_t *const *,
                           const float *, const xcorr *, int, int, float *, int64_t, int, int);
typedef void (*pack_fn)(const uint8_t *const[16], int, __m512i *, float *, float *, const uint8_t *, const uint8_t *);

/// amx, for a chunk of at least AMX_MIN_TOKENS tokens: token groups of 16, then the rest, as tile
/// multiplies (amx_tile, tiles shaped to the group); a chunk of at most AMX_FUSED_MAX tokens
/// (decoding, a step that prompts join) packs as it goes in each group, a larger one packs each
/// tile once for all its groups. Fewer than AMX_MIN_TOKENS left (or no AMX): VNNI token groups of
/// 8, 4, 2 and 1 over the packed tile, or without AMX over the prepacked records in place.
/// pre: W prepacked by lk_prepack (or NULL), read instead of W's rows when r0 is a multiple of 16.
LK_AVX512 static void mm_q32(int wtype, int amx, float *Y, int64_t ldy, const void *W, const uint8_t *pre,
                             const void *Xq, int64_t xstride, int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  // One token without prepacked records: the matvec, the same arithmetic without the transposed
  // copy. With them, the token runs over the records in place as a group of one (mm_T_21), one
  // linear stream instead of 16 interleaved rows: single-stream decode 221 / 235 / 228 -> 242 /
  // 242 / 248 t/s (Zen 4, lorad bench --prompt-tokens 64 --gen-tokens 128, alternating, 2026-12-06).
  if (ntok == 1 && !(pre && r0 % 16 == 0)) {
    lk_mv_q32_avx512(wtype, Y + r0, W, Xq, ncols, r0, r1);
    return;
  }
  mm_tile_fn f[4], fn[4], fr[4];  // 8, 4, 2, 1 tokens: VNNI order; AMX order (no 8); the records in place
  amx_fn a;
  pack_fn pack, pack_nat;
  unpack_fn unpack;
  if (wtype == LK_Q4_0) {
    f[0] = mm_Q4_0_08, f[1] = mm_Q4_0_04, f[2] = mm_Q4_0_02, f[3] = mm_Q4_0_01;
    fn[0] = NULL, fn[1] = mm_Q4_0_14, fn[2] = mm_Q4_0_12, fn[3] = mm_Q4_0_11;
    fr[0] = mm_Q4_0_28, fr[1] = mm_Q4_0_24, fr[2] = mm_Q4_0_22, fr[3] = mm_Q4_0_21;
    a = amx_Q4_0, pack = pack_Q4_0, pack_nat = pack_nat_Q4_0;
    unpack = unpack_Q4_0;
  } else if (wtype == LK_Q4_1) {
    f[0] = mm_Q4_1_08, f[1] = mm_Q4_1_04, f[2] = mm_Q4_1_02, f[3] = mm_Q4_1_01;
    fn[0] = NULL, fn[1] = mm_Q4_1_14, fn[2] = mm_Q4_1_12, fn[3] = mm_Q4_1_11;
    fr[0] = mm_Q4_1_28, fr[1] = mm_Q4_1_24, fr[2] = mm_Q4_1_22, fr[3] = mm_Q4_1_21;
    a = amx_Q4_1, pack = pack_Q4_1, pack_nat = pack_nat_Q4_1;
    unpack = unpack_Q4_1;
  } else {
    f[0] = mm_Q8_0_08, f[1] = mm_Q8_0_04, f[2] = mm_Q8_0_02, f[3] = mm_Q8_0_01;
    fn[0] = NULL, fn[1] = mm_Q8_0_14, fn[2] = mm_Q8_0_12, fn[3] = mm_Q8_0_11;
    fr[0] = mm_Q8_0_28, fr[1] = mm_Q8_0_24, fr[2] = mm_Q8_0_22, fr[3] = mm_Q8_0_21;
    a = amx_Q8_0, pack = pack_Q8_0, pack_nat = pack_nat_Q8_0;
    unpack = unpack_Q8_0;
  }
  const int bs = wbytes(wtype), xbs = xbytes(wtype), xoff = xqs_off(wtype);
  const int64_t nb = ncols / QK, rb = nb * bs, prb = pre_record(wtype);
  if (r0 % 16 != 0) pre = NULL;
  _Alignas(64) __m512i pk[KC * 8];    // (block, 8) transposed tile
  _Alignas(64) float dws[KC * 16];    // (block, row) weight scales of the tile
  _Alignas(64) float cws[KC * 16];    // (block, row) Q4_1 mins of the tile
  _Alignas(64) float dx[XCAP + 16 * KC];  // (token, block) activation scales (zeros to a multiple of 16 tokens)
  _Alignas(64) xcorr c[XCAP + 16 * KC];   // (token, block) activation corrections
  const uint8_t *xr[TMAX];
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
    const int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
    const uint8_t *wc = (const uint8_t *)W + kb0 * bs, *wend = (const uint8_t *)W + r1 * rb;
    int tmax = XCAP / nkb < TMAX ? XCAP / nkb : TMAX;
    for (int64_t tb = 0; tb < ntok; tb += tmax) {
      const int tt = (int)(ntok - tb < tmax ? ntok - tb : tmax), tiles = amx && tt >= AMX_MIN_TOKENS;
      for (int t = 0; t < tt; t++) {
        xr[t] = (const uint8_t *)Xq + (tb + t) * xstride + kb0 * xbs;
        prep_x(wtype, xr[t], nkb, dx + t * nkb, c + t * nkb);
      }
      if (tiles && tt % 16 != 0) {  // the tile kernels step 8 or 16 token lanes whatever the tokens: zeros past tt
        const int pad = 16 - tt % 16;
        memset(dx + tt * nkb, 0, sizeof(float) * (size_t)(pad * nkb));
        memset(c + tt * nkb, 0, sizeof(xcorr) * (size_t)(pad * nkb));
      }
      lk_prefetch pfc;
      for (int64_t r = r0; r < r1; r += 16) {
        const uint8_t *w[16], *pf, *pfend;
        tile_rows(wc, rb, r, r1, w);
        const uint8_t *tile_end = (const uint8_t *)W + (r + 16 < r1 ? r + 16 : r1) * rb;
        const uint8_t *rec = pre ? pre + (r / 16 * nb + kb0) * prb : NULL;
        if (rec) {
          pf = pfend = tile_end;  // the prepacked stream prefetches itself (unpack_records)
        } else if (tb == 0) {
          if (r == r0) pfc = prefetch_start(w, nkb * bs, tile_end, wend);
          prefetch_next(&pfc, tile_end, &pf, &pfend);
        } else {
          pf = pfend = tile_end;  // a later token chunk finds the weights in L2 or L3
        }
        const int nr = r1 - r < 16 ? (int)(r1 - r) : 16;
        float *y = Y + tb * ldy + r;
        int t = 0;
        if (tiles && tt <= AMX_FUSED_MAX) {  // groups of up to 16 tokens, each packing as it goes
          for (int n; tt - t >= AMX_MIN_TOKENS; t += n, pf = pfend = tile_end) {
            n = tt - t < 16 ? tt - t : 16;
            a(NULL, NULL, NULL, w, rec, nkb, xr[t] + xoff, xstride, dx + t * nkb, c + t * nkb, nkb, y + t * ldy, ldy,
              n, nr, kb0 == 0, pf, pfend);
          }
          if (t == tt) continue;
        }
        const int in_place = !tiles && rec;  // VNNI token groups over the records, no copy
        if (tiles && rec) unpack(rec, nkb, pk, dws, cws);
        else if (!in_place) (tiles ? pack_nat : pack)(w, nkb, pk, dws, cws, pf, pfend);
        while (t < tt) {
          const int left = tt - t;
          if (tiles && left >= AMX_MIN_TOKENS) {  // groups of 16, then the rest (tiles of its own shape)
            const int n = left < 16 ? left : 16;
            a(pk, dws, cws, NULL, NULL, nkb, xr[t] + xoff, xstride, dx + t * nkb, c + t * nkb, nkb, y + t * ldy, ldy,
              n, nr, kb0 == 0, NULL, NULL);
            t += n;
          } else {
            const int g = left >= 8 && !tiles ? 0 : left >= 4 ? 1 : left >= 2 ? 2 : 3;
            (in_place ? fr : tiles ? fn : f)[g](pk, dws, cws, rec, xr + t, dx + t * nkb, c + t * nkb, nkb, nkb,
                                                y + t * ldy, ldy, nr, kb0 == 0);
            t += 8 >> g;
          }
        }
      }
    }
  }
}

LK_AVX512 void lk_mm_q32_avx512(int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq,
                                int64_t xstride, int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  mm_q32(wtype, 0, Y, ldy, W, pre, Xq, xstride, ntok, ncols, r0, r1);
}

LK_AVX512 void lk_mm_q32_amx(int wtype, float *Y, int64_t ldy, const void *W, const void *pre, const void *Xq,
                             int64_t xstride, int64_t ntok, int64_t ncols, int64_t r0, int64_t r1) {
  mm_q32(wtype, 1, Y, ldy, W, pre, Xq, xstride, ntok, ncols, r0, r1);
}

/// The LoRA shrink of NT (1..4) activation rows (Q8_0) over A prepacked as lk_prepack lays
/// out a Q8_0 matrix (rank rows, the last tile padded with copies of the last row): per tile and
/// block, the record's 8 natural-order vectors loaded once, then for each row 8 vpdpbusd with 4
/// activation bytes broadcast each and block_step. The tile's lanes and scales are in the VNNI
/// tile's lane order, so these are the matvec's integers and float steps in its order: lk_matvec's
/// results bit for bit. The records are one linear stream (the A rows are rank interleaved
/// streams), which the hardware prefetcher follows from memory.
LK_AVX512 LK_INLINE void shrink_packed(int nt, float *t, int64_t ldt, const uint8_t *xq, int64_t xstride,
                                       const uint8_t *apk, int64_t rank, int64_t cols) {
  const int64_t nb = cols / QK, rb = pre_record(LK_Q8_0);
  const int xbs = xbytes(LK_Q8_0), xoff = xqs_off(LK_Q8_0);
  _Alignas(64) float dx[4][KC];
  _Alignas(64) xcorr c[4][KC];
  for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
    const int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
    for (int j = 0; j < nt; j++) prep_x(LK_Q8_0, xq + j * xstride + kb0 * xbs, nkb, dx[j], c[j]);
    for (int64_t r = 0; r < rank; r += 16) {
      const uint8_t *rec = apk + (r / 16 * nb + kb0) * rb;
      __m512 acc[4];
      for (int j = 0; j < nt; j++) acc[j] = _mm512_setzero_ps();
      for (int b = 0; b < nkb; b++, rec += rb) {
        prefetch_record(rec, rb);
        __m512i w[8];
        for (int k = 0; k < 8; k++) w[k] = _mm512_load_si512((const __m512i *)rec + k);
        const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(rec + 512)));
        for (int j = 0; j < nt; j++) {
          const uint8_t *x = xq + j * xstride + (kb0 + b) * xbs + xoff;
          __m512i d = _mm512_setzero_si512();
          for (int k = 0; k < 8; k++) d = _mm512_dpbusd_epi32(d, w[k], bcast4(x + 4 * k));
          acc[j] = block_step(LK_Q8_0, acc[j], d, dw, dw, dx[j] + b, c[j] + b);
        }
      }
      for (int j = 0; j < nt; j++) store16(t + j * ldt + r, acc[j], rank - r < 16 ? (int)(rank - r) : 16, kb0 == 0);
    }
  }
}

LK_AVX512 void lk_lora_shrink_q8_packed_avx512(float *t, int64_t ldt, const void *xq, int64_t xstride, int64_t ntok,
                                               const void *apk, int64_t rank, int64_t cols) {
  const uint8_t *x = xq;
  int64_t i = 0;
  for (; i + 4 <= ntok; i += 4) shrink_packed(4, t + i * ldt, ldt, x + i * xstride, xstride, apk, rank, cols);
  for (; i < ntok; i++) shrink_packed(1, t + i * ldt, ldt, x + i * xstride, xstride, apk, rank, cols);
}

/// Each 16-row tile packed by pack_nat, its nibbles two to a byte again, its scales back to the
/// halves they came from.
LK_AVX512 void lk_prepack(int wtype, const void *W, int64_t rows, int64_t cols, void *out) {
  const int bs = wbytes(wtype);
  const int64_t nb = cols / QK, rb = nb * bs, prb = pre_record(wtype);
  const pack_fn pack = wtype == LK_Q4_0 ? pack_nat_Q4_0 : wtype == LK_Q4_1 ? pack_nat_Q4_1 : pack_nat_Q8_0;
  _Alignas(64) __m512i pk[KC * 8];
  _Alignas(64) float dws[KC * 16], cws[KC * 16];
  for (int64_t r = 0; r < rows; r += 16)
    for (int64_t kb0 = 0; kb0 < nb; kb0 += KC) {
      const int nkb = (int)(nb - kb0 < KC ? nb - kb0 : KC);
      const uint8_t *w[16];
      tile_rows((const uint8_t *)W + kb0 * bs, rb, r, rows, w);
      pack(w, nkb, pk, dws, cws, w[15], w[15]);
      for (int k = 0; k < nkb; k++) {
        uint8_t *rec = (uint8_t *)out + (r / 16 * nb + kb0 + k) * prb;
        memset(rec, 0, (size_t)prb);
        const int qb = wtype == LK_Q8_0 ? 512 : 256;
        if (wtype == LK_Q8_0) {
          memcpy(rec, pk + 8 * k, 512);
        } else {
          for (int g = 0; g < 4; g++)
            _mm512_storeu_si512((__m512i *)rec + g,
                                _mm512_or_si512(pk[8 * k + g], _mm512_slli_epi16(pk[8 * k + 4 + g], 4)));
        }
        _mm256_storeu_si256((__m256i *)(rec + qb),
                            _mm512_cvtps_ph(_mm512_load_ps(dws + 16 * k), _MM_FROUND_TO_NEAREST_INT));
        if (wtype == LK_Q4_1)
          _mm256_storeu_si256((__m256i *)(rec + qb + 32),
                              _mm512_cvtps_ph(_mm512_load_ps(cws + 16 * k), _MM_FROUND_TO_NEAREST_INT));
      }
    }
}

#endif
