/* The AVX2 tile kernel (convf_internal.h): the image holds int16 values, the weights int16
 * pairs for blocks of 8 output channels; vpmaddwd (exact: i16 x i16 pairs summed into i32, no
 * saturation, unlike vpmaddubsw) times a broadcast pair of image values, added into a tile of up
 * to 6 pixels x 2 blocks of ymm accumulators. The epilogue is the reference arithmetic per
 * value. Compiled with -mavx2; called only when the plan found the CPU has it. */
#include <immintrin.h>
#include <string.h>

#include "qrt/convf_internal.h"

#define AINLINE static inline __attribute__((always_inline))

typedef struct at_args {
  const uint8_t *a0, *a1; /* window origin of the tile's first pixel on rows p and p + 1 */
  int64_t ps;             /* bytes between neighbouring output pixels' windows */
  const int64_t *seg;
  int64_t nseg, nunit;
  const uint8_t *w;
  const int32_t *bias;
  int32_t *out; /* [pixel][block][8] */
} at_args;

AINLINE __m256i bcast32(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, sizeof v);
  return _mm256_set1_epi32(v);
}

AINLINE void avx2_tile(const int MA, const int MB, const int N, const at_args *a) {
  __m256i acc[CF_AVX2_MMAX][2];
#pragma GCC unroll 2
  for (int n = 0; n < N; n++) {
    __m256i b = _mm256_load_si256((const __m256i *)(const void *)(a->bias + 8 * n));
#pragma GCC unroll 6
    for (int i = 0; i < MA + MB; i++) acc[i][n] = b;
  }
  const uint8_t *w = a->w;
  const int64_t ps = a->ps;
  for (int64_t sg = 0; sg < a->nseg; sg++) {
    const uint8_t *pa = a->a0 + a->seg[sg], *pb = a->a1 + a->seg[sg];
    for (int64_t u = 0; u < a->nunit; u++, pa += 4, pb += 4, w += 32 * N) {
      __m256i wv[2];
#pragma GCC unroll 2
      for (int n = 0; n < N; n++)
        wv[n] = _mm256_load_si256((const __m256i *)(const void *)(w + 32 * n));
#pragma GCC unroll 6
      for (int i = 0; i < MA; i++) {
        __m256i xv = bcast32(pa + i * ps);
#pragma GCC unroll 2
        for (int n = 0; n < N; n++)
          acc[i][n] = _mm256_add_epi32(acc[i][n], _mm256_madd_epi16(xv, wv[n]));
      }
#pragma GCC unroll 6
      for (int i = 0; i < MB; i++) {
        __m256i xv = bcast32(pb + i * ps);
#pragma GCC unroll 2
        for (int n = 0; n < N; n++)
          acc[MA + i][n] = _mm256_add_epi32(acc[MA + i][n], _mm256_madd_epi16(xv, wv[n]));
      }
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MA + MB; i++) {
#pragma GCC unroll 2
    for (int n = 0; n < N; n++)
      _mm256_store_si256((__m256i *)(void *)(a->out + (i * N + n) * 8), acc[i][n]);
  }
}

typedef void (*at_fn)(const at_args *a);
#define AT_DEF(MA, MB, N)                              \
  static void at_##MA##_##MB##_##N(const at_args *a) { \
    avx2_tile(MA, MB, N, a);                           \
  }
#define AT_N(N)   \
  AT_DEF(1, 0, N) \
  AT_DEF(2, 0, N) \
  AT_DEF(3, 0, N) \
  AT_DEF(4, 0, N) AT_DEF(5, 0, N) AT_DEF(6, 0, N) AT_DEF(1, 1, N) AT_DEF(2, 2, N) AT_DEF(3, 3, N)
AT_N(1)
AT_N(2)
#define AT_ENTRIES(N)                                                                   \
  {                                                                                     \
    [1][0] = at_1_0_##N, [2][0] = at_2_0_##N, [3][0] = at_3_0_##N, [4][0] = at_4_0_##N, \
    [5][0] = at_5_0_##N, [6][0] = at_6_0_##N, [1][1] = at_1_1_##N, [2][1] = at_2_2_##N, \
    [3][1] = at_3_3_##N                                                                 \
  }
static const at_fn at_table[2][CF_AVX2_MMAX + 1][2] = {AT_ENTRIES(1), AT_ENTRIES(2)};

/* ---- Epilogue ---- */

static int64_t elem_bytes(hawq_qtype t) {
  return t == HAWQ_QT_I16 ? 2 : t == HAWQ_QT_I32 ? 4 : 1;
}

/* Byte offset and length of channels [ch, ch + valid) in a row of type t. */
static void span(hawq_qtype t, int64_t ch, int valid, int64_t *off, int *bytes) {
  if (qrt_is_packed(t)) {
    *off = ch >> 1, *bytes = (valid + 1) >> 1;
  } else {
    *off = ch * elem_bytes(t), *bytes = valid * (int)elem_bytes(t);
  }
}

/* 8 residual values of type rt from channel ch of row (valid lanes; the rest 0). */
static __m256i load_res8(hawq_qtype rt, const uint8_t *row, int64_t ch, int valid) {
  int64_t off;
  int bytes;
  span(rt, ch, valid, &off, &bytes);
  uint8_t tmp[32] = {0};
  const uint8_t *p = row + off;
  if (valid < 8) {
    memcpy(tmp, p, (size_t)bytes);
    p = tmp;
  }
  switch (rt) {
    case HAWQ_QT_U8:
      return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    case HAWQ_QT_I8:
      return _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p));
    case HAWQ_QT_I16:
      return _mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p));
    case HAWQ_QT_I32:
      return _mm256_loadu_si256((const __m256i *)(const void *)p);
    case HAWQ_QT_U4:
    case HAWQ_QT_I4: {
      int32_t w;
      memcpy(&w, p, sizeof w);
      __m128i b = _mm_cvtsi32_si128(w);
      __m256i v = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b)); /* lane l: byte l / 2 */
      if (rt == HAWQ_QT_U4) {
        __m256i sh = _mm256_set_epi32(4, 0, 4, 0, 4, 0, 4, 0);
        return _mm256_and_si256(_mm256_srlv_epi32(v, sh), _mm256_set1_epi32(15));
      }
      __m256i sh = _mm256_set_epi32(24, 28, 24, 28, 24, 28, 24, 28);
      return _mm256_srai_epi32(_mm256_sllv_epi32(v, sh), 28);
    }
    case HAWQ_QT_COUNT:
      break;
  }
  return _mm256_setzero_si256();
}

/* Stores 8 int32 values (within the output's range) at channel ch of row. */
static void store8(hawq_qtype yt, uint8_t *row, int64_t ch, int valid, __m256i v) {
  const __m256i lo4 = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* dwords 0 and 4 first */
  __m256i out;
  switch (yt) {
    case HAWQ_QT_U8:
    case HAWQ_QT_I8: {
      __m256i sel = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0,
                                     4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
      out = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, sel), lo4);
      break;
    }
    case HAWQ_QT_I16: {
      __m256i sel = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1,
                                     4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
      out = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, sel),
                                        _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
      break;
    }
    case HAWQ_QT_U4:
    case HAWQ_QT_I4: {
      /* byte 0 of qword i: lane 2i's nibble, lane 2i + 1's (bits 32..35) moved to bits 4..7 */
      __m256i t = _mm256_and_si256(v, _mm256_set1_epi32(15));
      __m256i b = _mm256_or_si256(t, _mm256_srli_epi64(t, 28));
      /* bytes 0 and 8 of the low half to 0, 1, of the high half to 2, 3 */
      __m256i sel = _mm256_setr_epi8(0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                     -1, -1, 0, 8, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
      b = _mm256_shuffle_epi8(b, sel);
      out = _mm256_castsi128_si256(
          _mm_or_si128(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)));
      break;
    }
    default:
      out = v;
      break;
  }
  int64_t off;
  int bytes;
  span(yt, ch, valid, &off, &bytes);
  uint8_t tmp[32];
  _mm256_storeu_si256((__m256i *)(void *)tmp, out);
  memcpy(row + off, tmp, (size_t)bytes);
}

/* (x * m + rnd) >> 32 per int32 lane: the high dwords of the even and odd int64 sums. */
static inline __m256i mul_hi(__m256i x, __m256i me, __m256i mo, __m256i rnd_e, __m256i rnd_o) {
  __m256i e = _mm256_add_epi64(_mm256_mul_epi32(x, me), rnd_e);
  __m256i o = _mm256_add_epi64(_mm256_mul_epi32(_mm256_shuffle_epi32(x, 0xF5), mo), rnd_o);
  return _mm256_blend_epi32(_mm256_shuffle_epi32(e, 0xF5), o, 0xAA);
}

/* The tile's outputs from its accumulators: vectorised for fast blocks (convf_internal.h),
 * the reference arithmetic per value otherwise. */
static void epilogue(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j, const cf_tile *t,
                     const int32_t *acc, int nb) {
  const uint8_t *pk = (const uint8_t *)pl;
  int npix = t->ma + t->mb;
  hawq_qtype yt = (hawq_qtype)pl->yt, rt = (hawq_qtype)pl->rt;
  bool has_res = pl->rt >= 0;
  bool res_fast = !has_res || pl->rd.m == 0 || pl->rd.c >= 32;
  __m256i rm = _mm256_set1_epi64x(pl->rd.m);
  __m256i rrnd = _mm256_set1_epi64x(has_res ? (int64_t)1 << (pl->rd.c - 1) : 0);
  __m256i rd = _mm256_set1_epi32(pl->rd.m && pl->rd.c >= 32 ? pl->rd.c - 32 : 0);
  for (int n = 0; n < nb; n++) {
    int64_t blk = j * pl->nmax + n, kl0 = blk * 8;
    const uint8_t *ep = pk + pl->off_ep + (g * pl->nblk + blk) * pl->ep_bytes;
#define SLOT(i) _mm256_load_si256((const __m256i *)(const void *)(ep + (i)*32))
    const int32_t *em = (const int32_t *)(const void *)(ep + CF_EP_M * 32);
    const int64_t *arr = (const int64_t *)(const void *)(ep + CF_EP_RND_E * 32);
    const int32_t *flags = (const int32_t *)(const void *)(ep + CF_EP_FLAGS * 32);
    int valid = (int)(pl->kg - kl0 < 8 ? pl->kg - kl0 : 8);
    int64_t ch = g * pl->kg + kl0;
    bool fast = flags[0] && res_fast;
    __m256i me = SLOT(CF_EP_M), mo = _mm256_shuffle_epi32(me, 0xF5);
    __m256i rnd_e = SLOT(CF_EP_RND_E), rnd_o = SLOT(CF_EP_RND_O), d = SLOT(CF_EP_D);
    __m256i lo = SLOT(CF_EP_LO32), hi = SLOT(CF_EP_HI32);
#undef SLOT
    for (int i = 0; i < npix; i++) {
      int64_t pix = i < t->ma ? (int64_t)t->p * pl->q + t->q0 + i
                              : (int64_t)(t->p + 1) * pl->q + t->q0 + (i - t->ma);
      const int32_t *a = acc + (i * nb + n) * 8;
      uint8_t *yr = cx->y + pix * pl->yrb;
      const uint8_t *rr = has_res ? cx->res + pix * pl->rrb : NULL;
      if (fast) {
        __m256i av = _mm256_load_si256((const __m256i *)(const void *)a);
        __m256i v = _mm256_srav_epi32(mul_hi(av, me, mo, rnd_e, rnd_o), d);
        if (has_res) {
          __m256i r = load_res8(rt, rr, ch, valid);
          v = _mm256_add_epi32(v, _mm256_srav_epi32(mul_hi(r, rm, rm, rrnd, rrnd), rd));
        }
        store8(yt, yr, ch, valid, _mm256_min_epi32(_mm256_max_epi32(v, lo), hi));
        continue;
      }
      for (int l = 0; l < valid; l++) {
        const int64_t *e = arr + (l >> 1) + (l & 1) * 4;
        int64_t v = ((int64_t)a[l] * em[l] + e[0]) >> e[8]; /* rounding term, shift */
        if (rr) v += hawq_rescale(hawq_qrow_get(rt, rr, ch + l), pl->rd);
        hawq_qrow_set(yt, yr, ch + l, (int32_t)hawq_clamp64(v, pl->ylo, pl->yhi));
      }
      if (ch + valid == pl->k) qrt_row_finish(yt, yr, pl->k);
    }
  }
}

void cf_tile_avx2(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j, const cf_tile *t) {
  const uint8_t *pk = (const uint8_t *)pl;
  at_args a;
  a.a0 = cx->img + (int64_t)t->p * pl->sh * pl->rsb + (int64_t)t->q0 * pl->sw * pl->pcb +
         g * pl->cg * 2;
  a.a1 = t->mb ? a.a0 + pl->sh * pl->rsb : a.a0;
  a.ps = pl->sw * pl->pcb;
  a.seg = (const int64_t *)(const void *)(pk + pl->off_seg);
  a.nseg = pl->nseg, a.nunit = pl->nunit;
  a.w = pk + pl->off_w + g * pl->wgrp_bytes + j * pl->wkg_bytes;
  int64_t blk0 = j * pl->nmax;
  a.bias = (const int32_t *)(const void *)(pk + pl->off_bias) + (g * pl->nblk + blk0) * 8;
  int nb = (int)(pl->nblk - blk0 < pl->nmax ? pl->nblk - blk0 : pl->nmax);
  int32_t acc[CF_AVX2_MMAX * 2 * 8] __attribute__((aligned(32)));
  a.out = acc;
  at_table[nb - 1][t->ma][t->mb ? 1 : 0](&a);
  epilogue(pl, cx, g, j, t, acc, nb);
}
