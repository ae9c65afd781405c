/* The AVX-512 VNNI tile kernel (convf_internal.h): a tile of up to 14 output pixels x up to
 * 4 blocks of 16 output channels accumulates in zmm registers with vpdpbusd (u8 image values
 * broadcast per pixel, times the packed s8 weights of 16 channels x 4 values), then the fused
 * epilogue rescales each channel in int64 (vpmuldq on even and odd lanes, vpsravq), adds the
 * rescaled residual, clamps and narrows to the output type. Compiled with -mavx512f -mavx512bw
 * -mavx512vl -mavx512vnni; called only when the plan found the CPU has them. */
#include <immintrin.h>
#include <string.h>

#include "qrt/convf_internal.h"

#define AINLINE static inline __attribute__((always_inline))

typedef struct vt_args {
  const uint8_t *a0, *a1; /* window origin of the tile's first pixel on rows p and p + 1 */
  int64_t ps;             /* bytes between neighbouring output pixels' windows */
  const int64_t *seg;
  int64_t nseg, nunit;
  const uint8_t *w;
  const uint8_t *pf; /* weights to prefetch into L2 alongside w (same layout), or NULL */
  const int32_t *bias;
  int32_t *out; /* [pixel][block][16] */
} vt_args;

AINLINE __m512i bcast32(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return _mm512_set1_epi32(v);
}

AINLINE void vnni_tile(const int MA, const int MB, const int N, const vt_args *a) {
  __m512i acc[CF_VNNI_MMAX][4];
#pragma GCC unroll 4
  for (int n = 0; n < N; n++) {
    __m512i b = _mm512_load_si512((const void *)(a->bias + 16 * n));
#pragma GCC unroll 14
    for (int i = 0; i < MA + MB; i++) acc[i][n] = b;
  }
  const uint8_t *w = a->w, *pf = a->pf;
  const int64_t ps = a->ps;
  for (int64_t sg = 0; sg < a->nseg; sg++) {
    const uint8_t *pa = a->a0 + a->seg[sg], *pb = a->a1 + a->seg[sg];
    for (int64_t u = 0; u < a->nunit; u++, pa += 4, pb += 4, w += 64 * N) {
      __m512i wv[4];
#pragma GCC unroll 4
      for (int n = 0; n < N; n++) wv[n] = _mm512_load_si512((const void *)(w + 64 * n));
      if (pf) {
#pragma GCC unroll 4
        for (int n = 0; n < N; n++) _mm_prefetch((const char *)(pf + 64 * n), _MM_HINT_T1);
        pf += 64 * N;
      }
#pragma GCC unroll 14
      for (int i = 0; i < MA; i++) {
        __m512i xv = bcast32(pa + i * ps);
#pragma GCC unroll 4
        for (int n = 0; n < N; n++) acc[i][n] = _mm512_dpbusd_epi32(acc[i][n], xv, wv[n]);
      }
#pragma GCC unroll 14
      for (int i = 0; i < MB; i++) {
        __m512i xv = bcast32(pb + i * ps);
#pragma GCC unroll 4
        for (int n = 0; n < N; n++) acc[MA + i][n] = _mm512_dpbusd_epi32(acc[MA + i][n], xv, wv[n]);
      }
    }
  }
#pragma GCC unroll 14
  for (int i = 0; i < MA + MB; i++) {
#pragma GCC unroll 4
    for (int n = 0; n < N; n++) _mm512_store_si512((void *)(a->out + (i * N + n) * 16), acc[i][n]);
  }
}

/* One function per (MA, MB, N) the planner uses (convf.c, tile_shape): MB is 0 (one row) or MA
 * (two rows); MA + MB <= 14 for N = 1, 2 and <= 6 for N = 4 (accumulators + weights +
 * broadcast <= 32 zmm); N = 4 only on rows of 24 pixels or more, so only one-row tiles. */
typedef void (*vt_fn)(const vt_args *a);
#define VT_DEF(MA, MB, N)                              \
  static void vt_##MA##_##MB##_##N(const vt_args *a) { \
    vnni_tile(MA, MB, N, a);                           \
  }
#define VT_ROW(N, MA) VT_DEF(MA, 0, N)
#define VT_TWO(N, MA) VT_DEF(MA, MA, N)
#define VT_ROWS_6(N) VT_ROW(N, 1) VT_ROW(N, 2) VT_ROW(N, 3) VT_ROW(N, 4) VT_ROW(N, 5) VT_ROW(N, 6)
#define VT_ROWS_14(N) \
  VT_ROWS_6(N)        \
  VT_ROW(N, 7)        \
  VT_ROW(N, 8) VT_ROW(N, 9) VT_ROW(N, 10) VT_ROW(N, 11) VT_ROW(N, 12) VT_ROW(N, 13) VT_ROW(N, 14)
#define VT_TWOS_7(N) \
  VT_TWO(N, 1) VT_TWO(N, 2) VT_TWO(N, 3) VT_TWO(N, 4) VT_TWO(N, 5) VT_TWO(N, 6) VT_TWO(N, 7)
VT_ROWS_14(1)
VT_ROWS_14(2)
VT_ROWS_6(4)
VT_TWOS_7(1)
VT_TWOS_7(2)

#define R1(N, MA) [MA][0] = vt_##MA##_0_##N
#define R2(N, MA) [MA][1] = vt_##MA##_##MA##_##N
#define ROWS6(N) R1(N, 1), R1(N, 2), R1(N, 3), R1(N, 4), R1(N, 5), R1(N, 6)
#define ROWS14(N) \
  ROWS6(N), R1(N, 7), R1(N, 8), R1(N, 9), R1(N, 10), R1(N, 11), R1(N, 12), R1(N, 13), R1(N, 14)
#define TWOS7(N) R2(N, 1), R2(N, 2), R2(N, 3), R2(N, 4), R2(N, 5), R2(N, 6), R2(N, 7)
static const vt_fn vt_table[4][CF_VNNI_MMAX + 1][2] = {
    {ROWS14(1), TWOS7(1)}, {ROWS14(2), TWOS7(2)}, {{NULL}}, {ROWS6(4)}};

/* ---- Epilogue ---- */

/* 16 residual values of type rt from channel ch of row p (valid lanes; the rest 0). */
AINLINE __m512i load_residual(hawq_qtype rt, const uint8_t *p, int64_t ch, int valid) {
  __mmask16 m16 = (__mmask16)((1u << valid) - 1);
  switch (rt) {
    case HAWQ_QT_U8:
      return _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m16, p + ch));
    case HAWQ_QT_I8:
      return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m16, p + ch));
    case HAWQ_QT_I16:
      return _mm512_cvtepi16_epi32(_mm256_maskz_loadu_epi16(m16, p + 2 * ch));
    case HAWQ_QT_I32:
      return _mm512_maskz_loadu_epi32(m16, p + 4 * ch);
    case HAWQ_QT_U4:
    case HAWQ_QT_I4: {
      __mmask16 m8 = (__mmask16)((1u << ((valid + 1) >> 1)) - 1);
      __m128i b = _mm_maskz_loadu_epi8(m8, p + (ch >> 1));
      __m512i v = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b)); /* lane l: byte l / 2 */
      if (rt == HAWQ_QT_U4) {
        __m512i sh = _mm512_set_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0);
        return _mm512_and_si512(_mm512_srlv_epi32(v, sh), _mm512_set1_epi32(15));
      }
      __m512i sh = _mm512_set_epi32(24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28, 24, 28);
      return _mm512_srai_epi32(_mm512_sllv_epi32(v, sh), 28);
    }
    case HAWQ_QT_COUNT:
      break;
  }
  return _mm512_setzero_si512();
}

/* Stores 16 int32 values (already within the output's range) at channel ch of row p. */
AINLINE void store_out(hawq_qtype yt, uint8_t *p, int64_t ch, int valid, __m512i v) {
  __mmask16 m16 = (__mmask16)((1u << valid) - 1);
  switch (yt) {
    case HAWQ_QT_U4:
    case HAWQ_QT_I4: {
      /* byte i of qword i: lane 2i's nibble, lane 2i + 1's (bits 32..35) moved to bits 4..7 */
      __m512i t = _mm512_and_si512(v, _mm512_set1_epi32(15));
      __m512i b = _mm512_or_si512(t, _mm512_srli_epi64(t, 28));
      _mm_mask_storeu_epi8(p + (ch >> 1), (__mmask16)((1u << ((valid + 1) >> 1)) - 1),
                           _mm512_cvtepi64_epi8(b));
      break;
    }
    case HAWQ_QT_U8:
    case HAWQ_QT_I8:
      _mm_mask_storeu_epi8(p + ch, m16, _mm512_cvtepi32_epi8(v));
      break;
    case HAWQ_QT_I16:
      _mm256_mask_storeu_epi16(p + 2 * ch, m16, _mm512_cvtepi32_epi16(v));
      break;
    case HAWQ_QT_I32:
      _mm512_mask_storeu_epi32(p + 4 * ch, m16, v);
      break;
    case HAWQ_QT_COUNT:
      break;
  }
}

/* (x * m + rnd) >> 32 per int32 lane (x * m in int64: even lanes from vpmuldq on x, odd ones on
 * x's odd dwords moved down), as int32: the high dwords of the even and odd int64 sums. */
AINLINE __m512i mul_hi(__m512i x, __m512i me, __m512i mo, __m512i rnd_e, __m512i rnd_o) {
  __m512i e = _mm512_add_epi64(_mm512_mul_epi32(x, me), rnd_e);
  __m512i o =
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_shuffle_epi32(x, (_MM_PERM_ENUM)0xF5), mo), rnd_o);
  /* even lanes: e's dwords 1 and 3 of each 128 bits; odd lanes: o's, in place */
  return _mm512_mask_shuffle_epi32(o, (__mmask16)0x5555, e, (_MM_PERM_ENUM)0x31);
}

/* The fused requantization (cf_plan.y2t >= 0) of 16 clamped 16-bit outputs v, stored at channel
 * ch of row p: clamp(rescale(v, qd), y2lo, y2hi) as bytes. |v| <= 2^15, so for c >= 32 the
 * rescale is the high half of v * m + 2^(c-1) shifted by c - 32 (fast_value's), and for
 * 17 <= c < 32 the 32-bit form of the residual's (fast_consts, res32). */
typedef struct second_consts {
  __m512i m, rnd, d;           /* c >= 32 */
  __m512i mhi, mlo, rnd32, sh; /* c < 32 */
  __m512i lo, hi;
  bool big_c;
} second_consts;

static void second_init(const cf_plan *pl, second_consts *k) {
  hawq_dyadic q = pl->qd;
  k->big_c = q.c >= 32;
  k->m = _mm512_set1_epi64(q.m);
  k->rnd = _mm512_set1_epi64((int64_t)1 << (q.c - 1));
  k->d = _mm512_set1_epi32(k->big_c ? q.c - 32 : 0);
  k->mhi = _mm512_set1_epi32(q.m >> 16);
  k->mlo = _mm512_set1_epi32(q.m & 0xFFFF);
  k->rnd32 = _mm512_set1_epi32(k->big_c ? 0 : 1 << (q.c - 17));
  k->sh = _mm512_set1_epi32(k->big_c ? 0 : q.c - 16);
  k->lo = _mm512_set1_epi32(pl->y2lo), k->hi = _mm512_set1_epi32(pl->y2hi);
}

AINLINE void store_second(const second_consts *k, uint8_t *p, int64_t ch, int valid, __m512i v) {
  __m512i w;
  if (k->big_c) {
    w = _mm512_srav_epi32(mul_hi(v, k->m, k->m, k->rnd, k->rnd), k->d);
  } else {
    __m512i u = _mm512_add_epi32(_mm512_mullo_epi32(v, k->mhi), k->rnd32);
    u = _mm512_add_epi32(u, _mm512_srai_epi32(_mm512_mullo_epi32(v, k->mlo), 16));
    w = _mm512_srav_epi32(u, k->sh);
  }
  w = _mm512_min_epi32(_mm512_max_epi32(w, k->lo), k->hi);
  _mm_mask_storeu_epi8(p + ch, (__mmask16)((1u << valid) - 1), _mm512_cvtepi32_epi8(w));
}

/* The fast epilogue of one block over the tile's pixels (YT, RES, SAT constant after inlining):
 * v = clamp(((acc * m + 2^(c-1)) >> 32) >> d [+ the residual's, alike], lo, hi). SAT: the
 * output is U8 [0, 255] or I8 [-128, 127], whose saturating narrowing is the clamp. */
typedef struct fast_consts {
  __m512i me, mo, rnd_e, rnd_o, d, lo, hi; /* the block's */
  __m512i rm, rrnd, rd;                    /* the residual's */
  /* The residual's in 32-bit lanes (res32: a residual of at most 16 bits and 17 <= c <= 46):
   * with m = mhi 2^16 + mlo, rescale(r) = (r mhi + 2^(c-17) + ((r mlo) >> 16)) >> (c - 16),
   * every term within int32 (|r mhi| <= 2^30, |r mlo| < 2^31). madd: mlo taken signed
   * (|mlo| <= 2^15, mhi < 2^15: every m below 2^31 - 2^15), so that both products are one
   * vpmaddwd each (r's low word times the constant's low word, r's sign word times 0) instead
   * of a two-uop vpmulld; otherwise mlo = m mod 2^16 and vpmulld. */
  __m512i r_mhi, r_mlo, r_rnd, r_sh;
  bool res32, madd;
  /* wide: the block is wide-fast (convf_internal.h): the int64 rescale with shift c, in the
   * even and odd lanes apart, then merged as int32 */
  __m512i sh_e, sh_o;
  bool wide;
} fast_consts;

/* One block's rescaled (and residual-added) value for one pixel, before the clamp. MADD: the
 * block's residual is res32 with madd (fast_consts), known outside the pixel loop. */
AINLINE __m512i fast_value(const bool RES, const bool MADD, const fast_consts *k, hawq_qtype rt,
                           __m512i a, const uint8_t *rr, int64_t ch, int valid) {
  __m512i v;
  if (k->wide) {
    __m512i e = _mm512_add_epi64(_mm512_mul_epi32(a, k->me), k->rnd_e);
    __m512i o = _mm512_add_epi64(
        _mm512_mul_epi32(_mm512_shuffle_epi32(a, (_MM_PERM_ENUM)0xF5), k->mo), k->rnd_o);
    e = _mm512_srav_epi64(e, k->sh_e);
    o = _mm512_srav_epi64(o, k->sh_o);
    /* lane 2i + 1 takes o's low dword (the results fit int32) */
    v = _mm512_mask_shuffle_epi32(e, (__mmask16)0xAAAA, o, (_MM_PERM_ENUM)0x80);
  } else {
    v = _mm512_srav_epi32(mul_hi(a, k->me, k->mo, k->rnd_e, k->rnd_o), k->d);
  }
  if (RES) {
    __m512i r = load_residual(rt, rr, ch, valid);
    if (MADD || (k->res32 && k->madd)) {
      __m512i u = _mm512_add_epi32(_mm512_madd_epi16(r, k->r_mhi), k->r_rnd);
      u = _mm512_add_epi32(u, _mm512_srai_epi32(_mm512_madd_epi16(r, k->r_mlo), 16));
      v = _mm512_add_epi32(v, _mm512_srav_epi32(u, k->r_sh));
    } else if (k->res32) {
      __m512i u = _mm512_add_epi32(_mm512_mullo_epi32(r, k->r_mhi), k->r_rnd);
      u = _mm512_add_epi32(u, _mm512_srai_epi32(_mm512_mullo_epi32(r, k->r_mlo), 16));
      v = _mm512_add_epi32(v, _mm512_srav_epi32(u, k->r_sh));
    } else {
      v = _mm512_add_epi32(v, _mm512_srav_epi32(mul_hi(r, k->rm, k->rm, k->rrnd, k->rrnd), k->rd));
    }
  }
  return v;
}

AINLINE void fast_block(const hawq_qtype YT, const bool RES, const bool SAT, const bool MADD,
                        const cf_plan *pl, const cf_ctx *cx, const cf_tile *t, const int32_t *acc,
                        int stride, int64_t ch, int valid, const fast_consts *kp) {
  /* a local copy: the byte stores below may alias *kp, which would reload every constant and
   * flag in every iteration */
  const fast_consts kc = *kp, *k = &kc;
  const int64_t yrb = pl->yrb, rrb = RES ? pl->rrb : 0;
  const hawq_qtype rt = (hawq_qtype)pl->rt;
  int64_t pix = (int64_t)t->p * pl->q + t->q0;
  uint8_t *yr = cx->y + pix * yrb;
  const uint8_t *rr = RES ? cx->res + pix * rrb : NULL;
  const __mmask16 m16 = (__mmask16)((1u << valid) - 1);
  const int npix = t->ma + t->mb, ma = t->ma;
  /* the fused requantization: only of 16-bit outputs (qrt_convf_can_fuse_requant) */
  const bool second = YT == HAWQ_QT_I16 && cx->y2;
  const int64_t y2rb = pl->y2rb;
  uint8_t *y2r = second ? cx->y2 + pix * y2rb : NULL;
  second_consts k2 = {0};
  if (second) second_init(pl, &k2);
  for (int i = 0; i < npix; i++, acc += stride, yr += yrb, rr = RES ? rr + rrb : rr) {
    if (i == ma) { /* the tile's second row */
      pix = (int64_t)(t->p + 1) * pl->q + t->q0;
      yr = cx->y + pix * yrb;
      if (RES) rr = cx->res + pix * rrb;
      if (second) y2r = cx->y2 + pix * y2rb;
    }
    __m512i v = fast_value(RES, MADD, k, rt, _mm512_load_si512((const void *)acc), rr, ch, valid);
    if (SAT && YT == HAWQ_QT_U8) {
      __m128i b = _mm512_cvtusepi32_epi8(_mm512_max_epi32(v, _mm512_setzero_si512()));
      _mm_mask_storeu_epi8(yr + ch, m16, b);
    } else if (SAT && YT == HAWQ_QT_I8) {
      _mm_mask_storeu_epi8(yr + ch, m16, _mm512_cvtsepi32_epi8(v));
    } else {
      __m512i c = _mm512_min_epi32(_mm512_max_epi32(v, k->lo), k->hi);
      store_out(YT, yr, ch, valid, c);
      if (second) {
        store_second(&k2, y2r, ch, valid, c);
        y2r += y2rb;
      }
    }
  }
}

/* Two neighbouring blocks (k0: 16 channels from ch, k1: valid1 channels after them) of a 4-bit
 * output, packed together: 32 values as 16 bytes. vpackssdw interleaves the blocks by 128-bit
 * lane (lane L: 4 of k0's values, then 4 of k1's; nothing saturates, the values are clamped
 * after, in 16 bits, against bounds packed the same way), each dword's two words become one
 * byte (low nibble first), and vpshufb puts the bytes back in channel order. */
AINLINE void fast_pair4(const hawq_qtype YT, const bool RES, const cf_plan *pl, const cf_ctx *cx,
                        const cf_tile *t, const int32_t *acc, int stride, int64_t ch, int valid1,
                        const fast_consts *k0, const fast_consts *k1) {
  const int64_t yrb = pl->yrb, rrb = RES ? pl->rrb : 0;
  const hawq_qtype rt = (hawq_qtype)pl->rt;
  const __m512i lo = _mm512_packs_epi32(k0->lo, k1->lo), hi = _mm512_packs_epi32(k0->hi, k1->hi);
  const __m128i order = _mm_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
  const __mmask16 bytes = (__mmask16)((1u << (8 + ((valid1 + 1) >> 1))) - 1);
  int64_t pix = (int64_t)t->p * pl->q + t->q0;
  uint8_t *yr = cx->y + pix * yrb;
  const uint8_t *rr = RES ? cx->res + pix * rrb : NULL;
  const int npix = t->ma + t->mb, ma = t->ma;
  for (int i = 0; i < npix; i++, acc += stride, yr += yrb, rr = RES ? rr + rrb : rr) {
    if (i == ma) {
      pix = (int64_t)(t->p + 1) * pl->q + t->q0;
      yr = cx->y + pix * yrb;
      if (RES) rr = cx->res + pix * rrb;
    }
    __m512i v0 = fast_value(RES, false, k0, rt, _mm512_load_si512((const void *)acc), rr, ch, 16);
    __m512i v1 = fast_value(RES, false, k1, rt, _mm512_load_si512((const void *)(acc + 16)), rr,
                            ch + 16, valid1);
    /* |v| < 2^30 may still pass int16: saturating keeps the clamp's result exact */
    __m512i w = _mm512_min_epi16(_mm512_max_epi16(_mm512_packs_epi32(v0, v1), lo), hi);
    if (YT == HAWQ_QT_I4) w = _mm512_and_si512(w, _mm512_set1_epi16(15));
    /* dword = w0 | w1 << 16, both in [0, 15]: (dword >> 12) | dword has w0 | w1 << 4 low */
    __m512i b = _mm512_or_si512(w, _mm512_srli_epi32(w, 12));
    __m128i packed = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(b), order);
    _mm_mask_storeu_epi8(yr + (ch >> 1), bytes, packed);
  }
}

#define FAST_CASES(RES, MADD)                                                          \
  switch (yt) {                                                                        \
    case HAWQ_QT_U4:                                                                   \
      fast_block(HAWQ_QT_U4, RES, false, MADD, pl, cx, t, a, stride, ch, valid, &k);   \
      break;                                                                           \
    case HAWQ_QT_I4:                                                                   \
      fast_block(HAWQ_QT_I4, RES, false, MADD, pl, cx, t, a, stride, ch, valid, &k);   \
      break;                                                                           \
    case HAWQ_QT_U8:                                                                   \
      if (sat) {                                                                       \
        fast_block(HAWQ_QT_U8, RES, true, MADD, pl, cx, t, a, stride, ch, valid, &k);  \
      } else {                                                                         \
        fast_block(HAWQ_QT_U8, RES, false, MADD, pl, cx, t, a, stride, ch, valid, &k); \
      }                                                                                \
      break;                                                                           \
    case HAWQ_QT_I8:                                                                   \
      if (sat) {                                                                       \
        fast_block(HAWQ_QT_I8, RES, true, MADD, pl, cx, t, a, stride, ch, valid, &k);  \
      } else {                                                                         \
        fast_block(HAWQ_QT_I8, RES, false, MADD, pl, cx, t, a, stride, ch, valid, &k); \
      }                                                                                \
      break;                                                                           \
    case HAWQ_QT_I16:                                                                  \
      fast_block(HAWQ_QT_I16, RES, false, MADD, pl, cx, t, a, stride, ch, valid, &k);  \
      break;                                                                           \
    case HAWQ_QT_I32:                                                                  \
      fast_block(HAWQ_QT_I32, RES, false, MADD, pl, cx, t, a, stride, ch, valid, &k);  \
      break;                                                                           \
    case HAWQ_QT_COUNT:                                                                \
      break;                                                                           \
  }

/* The fast path's constants for the block whose epilogue slots are at ep. */
static void block_consts(const cf_plan *pl, const uint8_t *ep, bool res32, fast_consts *k) {
#define SLOT(i) _mm512_load_si512((const void *)(ep + (i)*64))
  const int32_t *flags = (const int32_t *)(const void *)(ep + CF_EP_FLAGS * 64);
  bool has_res = pl->rt >= 0;
  k->me = SLOT(CF_EP_M);
  k->mo = _mm512_shuffle_epi32(k->me, (_MM_PERM_ENUM)0xF5);
  k->rnd_e = SLOT(CF_EP_RND_E), k->rnd_o = SLOT(CF_EP_RND_O);
  k->d = SLOT(CF_EP_D), k->lo = SLOT(CF_EP_LO32), k->hi = SLOT(CF_EP_HI32);
  k->rm = _mm512_set1_epi64(pl->rd.m);
  k->rrnd = _mm512_set1_epi64(has_res ? (int64_t)1 << (pl->rd.c - 1) : 0);
  k->rd = _mm512_set1_epi32(pl->rd.m && pl->rd.c >= 32 ? pl->rd.c - 32 : 0);
  int64_t h = ((int64_t)pl->rd.m + 32768) >> 16; /* mhi with a signed mlo */
  k->madd = res32 && h < 32768;
  k->r_mhi = _mm512_set1_epi32(k->madd ? (int32_t)h : pl->rd.m >> 16);
  k->r_mlo =
      _mm512_set1_epi32(k->madd ? (int32_t)(pl->rd.m - (h << 16)) & 0xFFFF : pl->rd.m & 0xFFFF);
  k->r_rnd = _mm512_set1_epi32(res32 ? 1 << (pl->rd.c - 17) : 0);
  k->r_sh = _mm512_set1_epi32(res32 ? pl->rd.c - 16 : 0);
  k->res32 = res32;
  k->sh_e = SLOT(CF_EP_SH_E), k->sh_o = SLOT(CF_EP_SH_O);
  k->wide = !flags[0];
#undef SLOT
}

static void epilogue(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j, const cf_tile *t,
                     const int32_t *acc, int nb) {
  const uint8_t *pk = (const uint8_t *)pl;
  int npix = t->ma + t->mb, stride = nb * 16;
  hawq_qtype yt = (hawq_qtype)pl->yt, rt = (hawq_qtype)pl->rt;
  bool has_res = pl->rt >= 0;
  bool sat = (yt == HAWQ_QT_U8 && pl->ylo == 0 && pl->yhi == 255) ||
             (yt == HAWQ_QT_I8 && pl->ylo == -128 && pl->yhi == 127);
  /* The residual's rescale, fast when c >= 32 (or m = 0) like the blocks', or in 32-bit lanes
   * (fast_consts) for the usual residual of at most 16 bits at a ratio near 1 (c about 30) */
  bool res32 = has_res && rt != HAWQ_QT_I32 && pl->rd.m != 0 && pl->rd.c >= 17 && pl->rd.c <= 46;
  bool res_fast = !has_res || pl->rd.m == 0 || pl->rd.c >= 32 || res32;
  __m512i rm = _mm512_set1_epi64(pl->rd.m);
  __m512i rrnd = _mm512_set1_epi64(has_res ? (int64_t)1 << (pl->rd.c - 1) : 0);
  __m512i rsh = _mm512_set1_epi64(pl->rd.c);
  for (int n = 0; n < nb; n++) {
    int64_t blk = j * pl->nmax + n, kl0 = blk * 16;
    const uint8_t *ep = pk + pl->off_ep + (g * pl->nblk + blk) * pl->ep_bytes;
#define SLOT(i) _mm512_load_si512((const void *)(ep + (i)*64))
    int valid = (int)(pl->kg - kl0 < 16 ? pl->kg - kl0 : 16);
    int64_t ch = g * pl->kg + kl0;
    const int32_t *flags = (const int32_t *)(const void *)(ep + CF_EP_FLAGS * 64);
    __m512i me = SLOT(CF_EP_M), mo = _mm512_shuffle_epi32(me, (_MM_PERM_ENUM)0xF5);
    __m512i rnd_e = SLOT(CF_EP_RND_E), rnd_o = SLOT(CF_EP_RND_O);
    if ((flags[0] || flags[1]) && res_fast) {
      fast_consts k;
      block_consts(pl, ep, res32, &k);
      const int32_t *a = acc + n * 16;
      const uint8_t *ep1 = ep + pl->ep_bytes;
      const int32_t *flags1 = (const int32_t *)(const void *)(ep1 + CF_EP_FLAGS * 64);
      if (qrt_is_packed(yt) && n + 1 < nb && (flags1[0] || flags1[1])) {
        /* a full block and the next: packed 32 values at a time */
        fast_consts k1;
        block_consts(pl, ep1, res32, &k1);
        int valid1 = (int)(pl->kg - kl0 - 16 < 16 ? pl->kg - kl0 - 16 : 16);
        if (yt == HAWQ_QT_U4) {
          if (has_res) {
            fast_pair4(HAWQ_QT_U4, true, pl, cx, t, a, stride, ch, valid1, &k, &k1);
          } else {
            fast_pair4(HAWQ_QT_U4, false, pl, cx, t, a, stride, ch, valid1, &k, &k1);
          }
        } else if (has_res) {
          fast_pair4(HAWQ_QT_I4, true, pl, cx, t, a, stride, ch, valid1, &k, &k1);
        } else {
          fast_pair4(HAWQ_QT_I4, false, pl, cx, t, a, stride, ch, valid1, &k, &k1);
        }
        n++;
        continue;
      }
      if (has_res && k.madd) {
        FAST_CASES(true, true)
      } else if (has_res) {
        FAST_CASES(true, false)
      } else {
        FAST_CASES(false, false)
      }
      continue;
    }
    /* Exact int64 path: any c. */
    __m512i sh_e = SLOT(CF_EP_SH_E), sh_o = SLOT(CF_EP_SH_O);
    __m512i lo_e = SLOT(CF_EP_LO_E), lo_o = SLOT(CF_EP_LO_O);
    __m512i hi_e = SLOT(CF_EP_HI_E), hi_o = SLOT(CF_EP_HI_O);
#undef SLOT
    second_consts k2 = {0};
    if (cx->y2) second_init(pl, &k2);
    for (int i = 0; i < npix; i++) {
      int64_t pix = i < t->ma ? (int64_t)t->p * pl->q + t->q0 + i
                              : (int64_t)(t->p + 1) * pl->q + t->q0 + (i - t->ma);
      __m512i a = _mm512_load_si512((const void *)(acc + i * stride + n * 16));
      __m512i e = _mm512_mul_epi32(a, me);
      __m512i o = _mm512_mul_epi32(_mm512_srli_epi64(a, 32), mo);
      e = _mm512_srav_epi64(_mm512_add_epi64(e, rnd_e), sh_e);
      o = _mm512_srav_epi64(_mm512_add_epi64(o, rnd_o), sh_o);
      if (has_res) {
        __m512i r = load_residual(rt, cx->res + pix * pl->rrb, ch, valid);
        __m512i re = _mm512_mul_epi32(r, rm);
        __m512i ro = _mm512_mul_epi32(_mm512_srli_epi64(r, 32), rm);
        e = _mm512_add_epi64(e, _mm512_srav_epi64(_mm512_add_epi64(re, rrnd), rsh));
        o = _mm512_add_epi64(o, _mm512_srav_epi64(_mm512_add_epi64(ro, rrnd), rsh));
      }
      e = _mm512_min_epi64(_mm512_max_epi64(e, lo_e), hi_e);
      o = _mm512_min_epi64(_mm512_max_epi64(o, lo_o), hi_o);
      /* lane 2i + 1 takes o's low dword: vpshufd selecting dwords 0 and 2 into 1 and 3 */
      __m512i v = _mm512_mask_shuffle_epi32(e, (__mmask16)0xAAAA, o, (_MM_PERM_ENUM)0x80);
      store_out(yt, cx->y + pix * pl->yrb, ch, valid, v);
      if (cx->y2) store_second(&k2, cx->y2 + pix * pl->y2rb, ch, valid, v);
    }
  }
}

void cf_tile_avx512vnni(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j,
                        const cf_tile *t) {
  const uint8_t *pk = (const uint8_t *)pl;
  vt_args a;
  a.a0 =
      cx->img + (int64_t)t->p * pl->sh * pl->rsb + (int64_t)t->q0 * pl->sw * pl->pcb + g * pl->cg;
  a.a1 = t->mb ? a.a0 + pl->sh * pl->rsb : a.a0;
  a.ps = pl->sw * pl->pcb;
  if (cx->tile_px) { /* groups is 1 */
    a.a0 = cx->tile_px;
    a.a1 = a.a0 + t->ma * pl->pcb;
    a.ps = pl->pcb;
  }
  a.seg = (const int64_t *)(pk + pl->off_seg);
  a.nseg = pl->nseg, a.nunit = pl->nunit;
  a.w = pk + pl->off_w + g * pl->wgrp_bytes + j * pl->wkg_bytes;
  /* In k-group-major order (weights too large to stay in L2 across tiles) the first tile of a
   * k-group streams its weights from L3 and the others find them in L2: those others fetch the
   * next k-group meanwhile. In tile-major order the thread's first tile streams every k-group:
   * each fetches the next. (A prefetch never faults: the last k-group's shorter block count
   * is harmless.) */
  bool first_tile = t->p == 0 && t->q0 == 0;
  bool pf = pl->kmajor ? !first_tile : cx->first_tile;
  a.pf = pf && j + 1 < pl->nkgrp ? a.w + pl->wkg_bytes : NULL;
  int64_t blk0 = j * pl->nmax;
  a.bias = (const int32_t *)(pk + pl->off_bias) + (g * pl->nblk + blk0) * 16;
  int nb = (int)(pl->nblk - blk0 < pl->nmax ? pl->nblk - blk0 : pl->nmax);
  int32_t acc[CF_VNNI_MMAX * 4 * 16] __attribute__((aligned(64)));
  a.out = acc;
  vt_table[nb - 1][t->ma][t->mb ? 1 : 0](&a);
  epilogue(pl, cx, g, j, t, acc, nb);
}

/* ---- Depthwise ---- */

typedef struct dw_args {
  const uint8_t *a0, *a1; /* window origin (channel 64j) of the tile's first pixel, rows p, p+1 */
  int64_t ps;             /* bytes between neighbouring output pixels' windows */
  const int64_t *off;     /* tap offsets, 4 per unit */
  int64_t nq;             /* units: tap quads */
  const uint8_t *w;       /* 4 zmm per unit */
  const int32_t *bias;    /* 4 zmm, in the weights' channel order */
  int32_t *out;           /* [pixel][nb][16], channels in order */
  int nb;                 /* blocks of 16 channels to store */
} dw_args;

/* 64 channels x MA + MB pixels: for each tap quad, the 4 taps' 64 bytes are interleaved into
 * 4 zmm of (tap 0, 1, 2, 3) byte quads per channel, channel 16L + 4i + l in zmm i (vpunpck*bw,
 * then *wd, work within 128-bit lanes), each vpdpbusd'd with its weights; the accumulators are
 * put back in channel order (a 4 x 4 transpose of 128-bit lanes) at the end. */
AINLINE void dw_tile(const int MA, const int MB, const dw_args *a) {
  __m512i acc[CF_DW_MMAX][4];
#pragma GCC unroll 4
  for (int z = 0; z < 4; z++) {
    __m512i b = _mm512_load_si512((const void *)(a->bias + 16 * z));
#pragma GCC unroll 4
    for (int i = 0; i < MA + MB; i++) acc[i][z] = b;
  }
  const uint8_t *w = a->w;
  const int64_t *off = a->off;
  for (int64_t u = 0; u < a->nq; u++, w += 256, off += 4) {
    __m512i w0 = _mm512_load_si512((const void *)w);
    __m512i w1 = _mm512_load_si512((const void *)(w + 64));
    __m512i w2 = _mm512_load_si512((const void *)(w + 128));
    __m512i w3 = _mm512_load_si512((const void *)(w + 192));
    int64_t o0 = off[0], o1 = off[1], o2 = off[2], o3 = off[3];
#pragma GCC unroll 4
    for (int i = 0; i < MA + MB; i++) {
      const uint8_t *p = i < MA ? a->a0 + i * a->ps : a->a1 + (i - MA) * a->ps;
      __m512i t0 = _mm512_loadu_si512((const void *)(p + o0));
      __m512i t1 = _mm512_loadu_si512((const void *)(p + o1));
      __m512i t2 = _mm512_loadu_si512((const void *)(p + o2));
      __m512i t3 = _mm512_loadu_si512((const void *)(p + o3));
      __m512i lo01 = _mm512_unpacklo_epi8(t0, t1), hi01 = _mm512_unpackhi_epi8(t0, t1);
      __m512i lo23 = _mm512_unpacklo_epi8(t2, t3), hi23 = _mm512_unpackhi_epi8(t2, t3);
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], _mm512_unpacklo_epi16(lo01, lo23), w0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], _mm512_unpackhi_epi16(lo01, lo23), w1);
      acc[i][2] = _mm512_dpbusd_epi32(acc[i][2], _mm512_unpacklo_epi16(hi01, hi23), w2);
      acc[i][3] = _mm512_dpbusd_epi32(acc[i][3], _mm512_unpackhi_epi16(hi01, hi23), w3);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MA + MB; i++) {
    /* block L (channels 16L..) = lane L of acc 0, 1, 2, 3 */
    __m512i s0 = _mm512_shuffle_i32x4(acc[i][0], acc[i][1], 0x44); /* 0.L0 0.L1 1.L0 1.L1 */
    __m512i s1 = _mm512_shuffle_i32x4(acc[i][2], acc[i][3], 0x44);
    __m512i s2 = _mm512_shuffle_i32x4(acc[i][0], acc[i][1], 0xEE); /* 0.L2 0.L3 1.L2 1.L3 */
    __m512i s3 = _mm512_shuffle_i32x4(acc[i][2], acc[i][3], 0xEE);
    __m512i blk[4] = {_mm512_shuffle_i32x4(s0, s1, 0x88), _mm512_shuffle_i32x4(s0, s1, 0xDD),
                      _mm512_shuffle_i32x4(s2, s3, 0x88), _mm512_shuffle_i32x4(s2, s3, 0xDD)};
    for (int z = 0; z < a->nb; z++) {
      _mm512_store_si512((void *)(a->out + (i * a->nb + z) * 16), blk[z]);
    }
  }
}

typedef void (*dw_fn)(const dw_args *a);
#define DW_DEF(MA, MB)                           \
  static void dw_##MA##_##MB(const dw_args *a) { \
    dw_tile(MA, MB, a);                          \
  }
DW_DEF(1, 0)
DW_DEF(2, 0)
DW_DEF(3, 0)
DW_DEF(4, 0)
DW_DEF(1, 1)
DW_DEF(2, 2)
static const dw_fn dw_table[CF_DW_MMAX + 1][2] = {
    [1][0] = dw_1_0, [2][0] = dw_2_0, [3][0] = dw_3_0,
    [4][0] = dw_4_0, [1][1] = dw_1_1, [2][1] = dw_2_2};

void cf_tile_dw_avx512vnni(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j,
                           const cf_tile *t) {
  const uint8_t *pk = (const uint8_t *)pl;
  dw_args a;
  a.a0 = cx->img + (int64_t)t->p * pl->sh * pl->rsb + (int64_t)t->q0 * pl->sw * pl->pcb + j * 64;
  a.a1 = t->mb ? a.a0 + pl->sh * pl->rsb : a.a0;
  a.ps = pl->sw * pl->pcb;
  a.off = (const int64_t *)(const void *)(pk + pl->off_seg);
  a.nq = pl->nunit;
  a.w = pk + pl->off_w + j * pl->wkg_bytes;
  a.bias = (const int32_t *)(const void *)(pk + pl->off_bias) + j * 64;
  a.nb = (int)(pl->nblk - j * 4 < 4 ? pl->nblk - j * 4 : 4);
  int32_t acc[CF_DW_MMAX * 4 * 16] __attribute__((aligned(64)));
  a.out = acc;
  dw_table[t->ma][t->mb ? 1 : 0](&a);
  epilogue(pl, cx, g, j, t, acc, a.nb);
}

/* ---- 4-bit image fills (convf.c) ---- */

/* 32 packed bytes (64 nibbles) as 64 bytes, low nibble first: widened to 16-bit words 0x00HL,
 * (w | w << 4) & 0x0F0F is 0x0H0L, which in memory is L then H. */
AINLINE __m512i spread_nibbles(__m256i packed, __m512i flip) {
  __m512i w = _mm512_cvtepu8_epi16(packed);
  __m512i v = _mm512_and_si512(_mm512_or_si512(w, _mm512_slli_epi16(w, 4)), _mm512_set1_epi8(15));
  return _mm512_xor_si512(v, flip);
}

void cf_unpack_nibbles_avx512(const uint8_t *src, uint8_t *dst, int64_t bytes, uint8_t flip) {
  const __m512i f = _mm512_set1_epi8((char)flip);
  int64_t i = 0;
  for (; i + 32 <= bytes; i += 32) {
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
    _mm512_storeu_si512((void *)(dst + 2 * i), spread_nibbles(b, f));
  }
  if (i < bytes) {
    int64_t n = bytes - i; /* < 32: masked, so nothing past either end is touched */
    __m256i b = _mm256_maskz_loadu_epi8((__mmask32)((1u << n) - 1), src + i);
    _mm512_mask_storeu_epi8(dst + 2 * i, (__mmask64)((1ull << (2 * n)) - 1), spread_nibbles(b, f));
  }
}

/* c = 1 or 3 values per pixel, stored in (c + 1) / 2 bytes (the last high nibble unused): 32
 * bytes spread to 64 nibbles hold 64 / (c + 1) whole pixels, 16 / (c + 1) in each 128-bit lane;
 * vpshufb packs each lane's values to its front (4c bytes: whole dwords for c = 1 and 3, which
 * is why only these two are done here) and vpermd joins the lanes. */
bool cf_unpack_odd_avx512(const uint8_t *src, uint8_t *dst, int64_t w, int64_t c, uint8_t flip) {
  if (c != 1 && c != 3) return false;
  const __m512i f = _mm512_set1_epi8((char)flip);
  __m512i lane_pack, join;
  if (c == 1) {
    lane_pack = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1));
    join = _mm512_setr_epi32(0, 1, 4, 5, 8, 9, 12, 13, 0, 0, 0, 0, 0, 0, 0, 0);
  } else {
    lane_pack = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1));
    join = _mm512_setr_epi32(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 0, 0, 0, 0);
  }
  int64_t step = c == 1 ? 32 : 16, in_step = 32, out_step = step * c; /* pixels, bytes in, out */
  int64_t px = 0, in_row = w * ((c + 1) >> 1);
  for (; px + step <= w; px += step, src += in_step, dst += out_step) {
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)src);
    __m512i v =
        _mm512_permutexvar_epi32(join, _mm512_shuffle_epi8(spread_nibbles(b, f), lane_pack));
    _mm512_mask_storeu_epi8(dst, (__mmask64)((1ull << out_step) - 1), v);
  }
  if (px < w) {
    int64_t n = w - px, in_bytes = in_row - px * ((c + 1) >> 1);
    __m256i b = _mm256_maskz_loadu_epi8((__mmask32)((1ull << in_bytes) - 1), src);
    __m512i v =
        _mm512_permutexvar_epi32(join, _mm512_shuffle_epi8(spread_nibbles(b, f), lane_pack));
    _mm512_mask_storeu_epi8(dst, (__mmask64)((1ull << (n * c)) - 1), v);
  }
  return true;
}
