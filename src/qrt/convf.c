/* The fast convolution kernels' level-independent part (convf.h, convf_internal.h): which nodes
 * they handle, the geometry and packing of a node, filling the padded image, and the threaded
 * driver that hands tiles to the level's kernel (convf_avx512vnni.c, convf_avx2.c). Compiled for
 * the baseline instruction set: only the tile kernels and the 4-bit unpacking (which fills only
 * the VNNI level's image) need AVX. */
#include <string.h>

#include "qrt/convf_internal.h"

static int64_t align64(int64_t x) {
  return (x + 63) & ~(int64_t)63;
}

static int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}

/* Blocks per k-group and pixels per tile of a level, for a group of nblk blocks and output rows
 * of q pixels. On VNNI a tile's accumulators, its k-group's weight registers and a broadcast fit
 * 32 zmm: 14 x 2 by default (the fewest loads per vpdpbusd), 6 x 4 for 64-channel layers with
 * wide rows (the input read once; measured a few % faster), 14 x 1 for a single block. AVX2:
 * 6 x 2 in 16 ymm. */
static void tile_shape(hawq_isa isa, int64_t nblk, int64_t q, int32_t *nmax, int32_t *mmax) {
  if (isa == HAWQ_ISA_AVX512VNNI) {
    bool four = nblk == 4 && q >= 24;
    *nmax = four ? 4 : nblk >= 2 ? 2 : 1;
    *mmax = four ? 6 : CF_VNNI_MMAX;
  } else {
    *nmax = nblk >= 2 ? 2 : 1;
    *mmax = CF_AVX2_MMAX;
  }
}

/* The node's geometry and packed layout for isa; false when the level does not handle it. */
static bool geometry(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, cf_plan *pl) {
  memset(pl, 0, sizeof *pl);
  if (isa != HAWQ_ISA_AVX512VNNI && isa != HAWQ_ISA_AVX2) return false;
  if (n->op != HAWQ_QOP_CONV || n->groups < 1) return false;
  const hawq_qtensor *x = &m->tensors[n->inputs[0]], *y = &m->tensors[n->output];
  int res_t = n->n_inputs == 2 ? n->inputs[1] : -1;
  const hawq_qtensor *res = res_t >= 0 ? &m->tensors[res_t] : NULL;
  if (x->type != HAWQ_QT_U8 && x->type != HAWQ_QT_I8 && x->type != HAWQ_QT_U4 &&
      x->type != HAWQ_QT_I4)
    return false;
  bool vnni = isa == HAWQ_ISA_AVX512VNNI;
  pl->isa = (int32_t)isa;
  pl->xt = (int32_t)x->type, pl->yt = (int32_t)y->type, pl->rt = res ? (int32_t)res->type : -1;
  pl->ylo = y->lo, pl->yhi = y->hi;
  pl->rd = n->residual_dyadic;
  pl->y2t = -1;
  pl->h = x->h, pl->w = x->w, pl->c = x->c;
  pl->p = y->h, pl->q = y->w, pl->k = y->c;
  pl->groups = n->groups;
  pl->cg = qrt_exact_quotient(pl->c, pl->groups);
  pl->kg = qrt_exact_quotient(pl->k, pl->groups);
  /* Depthwise (one input and one output channel per group) has its own VNNI kernel, which
   * treats the channels as one group. */
  bool dwc = vnni && pl->groups > 1 && pl->cg == 1 && pl->kg == 1;
  if (dwc) pl->groups = 1, pl->cg = pl->c, pl->kg = pl->k;
  pl->dwc = dwc;
  /* A group's output channels start on a byte of a packed row only when kg is even. */
  bool packed_out = qrt_is_packed(y->type) || (res && qrt_is_packed(res->type));
  if (pl->groups > 1 && packed_out && (pl->kg & 1)) return false;
  pl->r = n->kernel[0], pl->s = n->kernel[1];
  pl->sh = n->stride[0], pl->sw = n->stride[1];
  pl->dh = n->dilation[0], pl->dw = n->dilation[1];
  pl->pt = n->pad[0], pl->pl = n->pad[1];
  pl->lanes = vnni ? 16 : 8;
  pl->esz = vnni ? 1 : 2;
  if (vnni) pl->zp = x->type == HAWQ_QT_I8 ? 128 : x->type == HAWQ_QT_I4 ? 8 : 0;
  pl->xrb = qrt_row_bytes(x->type, pl->c);
  pl->yrb = qrt_row_bytes(y->type, pl->k);
  pl->rrb = res ? qrt_row_bytes(res->type, pl->k) : 0;
  pl->xsample = pl->h * pl->w * pl->xrb;
  pl->ysample = pl->p * pl->q * pl->yrb;
  pl->rsample = pl->p * pl->q * pl->rrb;

  /* The reduction's segments. */
  bool merged = pl->groups == 1 && (pl->dw == 1 || pl->s == 1);
  int64_t seglen = merged ? pl->s * pl->c : pl->cg; /* values */
  int unit_shift = vnni ? 2 : 1;                    /* values per 4-byte unit: 4 or 2 */
  pl->nseg = merged ? pl->r : pl->r * pl->s;
  pl->nunit = (seglen + (1 << unit_shift) - 1) >> unit_shift;
  if (dwc) { /* segments: the taps' offsets, in quads (the last padded with zero weights) */
    pl->nunit = (pl->r * pl->s + 3) >> 2;
    pl->nseg = pl->nunit * 4;
  }
  bool nopad = n->pad[0] == 0 && n->pad[1] == 0 && n->pad[2] == 0 && n->pad[3] == 0;
  bool four = x->type == HAWQ_QT_U4 || x->type == HAWQ_QT_I4;
  pl->unpack_tiles = vnni && !dwc && four && pl->r == 1 && pl->s == 1 && pl->groups == 1;
  pl->inplace =
      vnni && !dwc && (x->type == HAWQ_QT_U8 || pl->unpack_tiles) && nopad && (seglen & 3) == 0;
  pl->unpack_tiles &= pl->inplace;
  if (pl->inplace) {
    pl->hp = pl->h, pl->wp = pl->w;
    pl->img_bytes = 0;
  } else {
    pl->hp = pl->h + n->pad[0] + n->pad[2];
    pl->wp = pl->w + n->pad[1] + n->pad[3];
  }
  pl->pcb = pl->c * pl->esz;
  pl->rsb = pl->wp * pl->pcb;
  if (pl->hp > ((int64_t)1 << 24) || pl->rsb > ((int64_t)1 << 32) ||
      pl->hp * pl->rsb > ((int64_t)1 << 36))
    return false; /* absurd paddings stay on the reference */
  if (!pl->inplace) pl->img_bytes = align64(pl->hp * pl->rsb + 64); /* slack: a unit's overrun */

  /* Blocks, k-groups, tiles. */
  pl->nblk = (pl->kg + pl->lanes - 1) >> (vnni ? 4 : 3);
  tile_shape(isa, pl->nblk, pl->q, &pl->nmax, &pl->mmax);
  if (dwc) pl->nmax = 4, pl->mmax = CF_DW_MMAX; /* 64 channels x up to 4 pixels */
  pl->nkgrp = 0;
  for (int64_t b = 0; b < pl->nblk; b += pl->nmax) pl->nkgrp++;
  if (2 * pl->q <= pl->mmax) {
    pl->ntiles = (pl->p + 1) >> 1;
  } else {
    int64_t per_row = 0;
    for (int64_t q = 0; q < pl->q; q += pl->mmax) per_row++;
    pl->ntiles = pl->p * per_row;
  }
  pl->blk_bytes = (int64_t)pl->lanes * 4;
  pl->wkg_bytes = pl->nseg * pl->nunit * pl->nmax * pl->blk_bytes;
  int64_t last_blocks = pl->nblk - (pl->nkgrp - 1) * pl->nmax;
  pl->wgrp_bytes =
      (pl->nkgrp - 1) * pl->wkg_bytes + pl->nseg * pl->nunit * last_blocks * pl->blk_bytes;
  if (dwc) { /* per 64 channels and tap quad: 4 zmm (convf_avx512vnni.c, dw_tile) */
    pl->wkg_bytes = pl->nunit * 256;
    pl->wgrp_bytes = pl->nkgrp * pl->wkg_bytes;
  }
  pl->ep_bytes = (int64_t)pl->lanes * 4 * CF_EP_SLOTS;
  pl->kmajor = pl->wgrp_bytes > ((int64_t)1 << 20);
  if (pl->unpack_tiles && pl->kmajor) {
    /* k-group-major order would unpack every tile once per k-group: unpack the image once */
    pl->unpack_tiles = pl->inplace = 0;
    pl->img_bytes = align64(pl->hp * pl->rsb + 64);
  }
  if (pl->unpack_tiles) pl->ubuf_bytes = align64(pl->mmax * pl->pcb);

  /* The packed form's parts. */
  int64_t at = align64((int64_t)sizeof(cf_plan));
  pl->off_seg = at;
  at += align64(pl->nseg * (int64_t)sizeof(int64_t));
  pl->off_tile = at;
  at += align64(pl->ntiles * (int64_t)sizeof(cf_tile));
  pl->off_bias = at;
  at += align64(dwc ? pl->nkgrp * 256 : pl->groups * pl->nblk * pl->lanes * 4);
  pl->off_ep = at;
  at += align64(pl->groups * pl->nblk * pl->ep_bytes);
  pl->off_w = at;
  at += align64(pl->groups * pl->wgrp_bytes);
  pl->total = at;
  return true;
}

bool qrt_convf_supported(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa) {
  cf_plan pl;
  return geometry(m, n, isa, &pl);
}

size_t qrt_convf_packed_size(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa) {
  cf_plan pl;
  return geometry(m, n, isa, &pl) ? (size_t)pl.total : 0;
}

bool qrt_convf_can_fuse_requant(const hawq_qmodel *m, const hawq_qnode *n, const hawq_qnode *rq,
                                hawq_isa isa) {
  cf_plan pl;
  if (isa != HAWQ_ISA_AVX512VNNI || !geometry(m, n, isa, &pl) || pl.dwc) return false;
  if (rq->op != HAWQ_QOP_REQUANT || rq->inputs[0] != n->output) return false;
  const hawq_qtensor *y2 = &m->tensors[rq->output];
  hawq_dyadic d = rq->dyadic[0];
  return pl.yt == HAWQ_QT_I16 && (y2->type == HAWQ_QT_U8 || y2->type == HAWQ_QT_I8) &&
         y2->h == pl.p && y2->w == pl.q && y2->c == pl.k && d.m != 0 && d.c >= 17 && d.c <= 62;
}

void qrt_convf_fuse_requant(const hawq_qmodel *m, const hawq_qnode *rq, void *packed) {
  cf_plan *pl = (cf_plan *)packed;
  const hawq_qtensor *y2 = &m->tensors[rq->output];
  pl->y2t = (int32_t)y2->type;
  pl->y2lo = y2->lo, pl->y2hi = y2->hi;
  pl->qd = rq->dyadic[0];
  pl->y2rb = qrt_row_bytes(y2->type, pl->k);
  pl->y2sample = pl->p * pl->q * pl->y2rb;
}

size_t qrt_convf_scratch_size(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, int batch,
                              int threads) {
  (void)batch; /* one image, filled by all threads, one sample at a time */
  cf_plan pl;
  if (!geometry(m, n, isa, &pl)) return 0;
  if (pl.unpack_tiles) return (size_t)(threads < 1 ? 1 : threads) * (size_t)pl.ubuf_bytes;
  return (size_t)(pl.img_bytes > 64 ? pl.img_bytes : 64);
}

/* Tiles of one sample's P x Q output: two rows at a time when two fit a tile, else each row
 * cut into as few tiles as fit, of near-equal widths. */
static void make_tiles(const cf_plan *pl, cf_tile *t) {
  int64_t i = 0;
  if (2 * pl->q <= pl->mmax) {
    for (int64_t p = 0; p < pl->p; p += 2, i++) {
      t[i] = (cf_tile){(int32_t)p, 0, (int32_t)pl->q, p + 1 < pl->p ? (int32_t)pl->q : 0};
    }
    return;
  }
  int64_t per_row = 0;
  for (int64_t q = 0; q < pl->q; q += pl->mmax) per_row++;
  int64_t base = qrt_quotient(pl->q, per_row), extra = pl->q - base * per_row;
  for (int64_t p = 0; p < pl->p; p++) {
    for (int64_t k = 0, q0 = 0; k < per_row; k++, i++) {
      int64_t width = base + (k < extra);
      t[i] = (cf_tile){(int32_t)p, (int32_t)q0, (int32_t)width, 0};
      q0 += width;
    }
  }
}

/* Epilogue constants of the block of `lanes` channels from k0 (global), valid of them real. */
static void pack_epilogue(const cf_plan *pl, const hawq_qnode *n, uint8_t *ep, int64_t k0,
                          int64_t valid, int64_t xmax, int64_t len) {
  int64_t lanes = pl->lanes, half = lanes >> 1;
  int32_t *em = (int32_t *)(void *)(ep + CF_EP_M * lanes * 4);
  int32_t *ed = (int32_t *)(void *)(ep + CF_EP_D * lanes * 4);
  int32_t *elo = (int32_t *)(void *)(ep + CF_EP_LO32 * lanes * 4);
  int32_t *ehi = (int32_t *)(void *)(ep + CF_EP_HI32 * lanes * 4);
  int32_t *eflags = (int32_t *)(void *)(ep + CF_EP_FLAGS * lanes * 4);
  int64_t *arr = (int64_t *)(void *)(ep + CF_EP_RND_E * lanes * 4);
  eflags[0] = 1, eflags[1] = 1;
  for (int64_t l = 0; l < lanes; l++) {
    int64_t *e = arr + (l >> 1) + (l & 1) * half; /* even or odd lane slots */
    if (l >= valid) {
      e[0] = 1, e[2 * half] = 1; /* m = 0, c = 1; lo = hi = 0 */
      continue;
    }
    hawq_dyadic d = n->dyadic[k0 + l];
    em[l] = d.m;
    e[0] = (int64_t)1 << (d.c - 1);
    e[2 * half] = d.c;
    e[4 * half] = pl->ylo;
    e[6 * half] = pl->yhi;
    ed[l] = d.m && d.c >= 32 ? d.c - 32 : 0;
    elo[l] = pl->ylo, ehi[l] = pl->yhi;
    if (d.m && d.c < 32) {
      eflags[0] = 0;
      int64_t wsum = 0; /* the accumulator bound: < 2^31 (validated), so * m < 2^62 */
      for (int64_t i = 0; i < len; i++) {
        int32_t w = hawq_qweight_get(n, len, k0 + l, i);
        wsum += w < 0 ? -w : w;
      }
      int64_t b = n->bias[k0 + l], bound = xmax * wsum + (b < 0 ? -b : b);
      if ((bound * d.m + ((int64_t)1 << (d.c - 1))) >> d.c >= (int64_t)1 << 30) eflags[1] = 0;
    }
  }
}

/* acc = bias + sum((x + zp) * w) - zp * sum(w), modulo 2^32 */
static int32_t folded_bias(const cf_plan *pl, const hawq_qnode *n, int64_t k, uint32_t sum) {
  return (int32_t)((uint32_t)n->bias[k] - (uint32_t)pl->zp * sum);
}

/* Depthwise weights and biases (convf_internal.h, cf_tile_dw_avx512vnni). */
static void pack_depthwise(const cf_plan *pl, const hawq_qnode *n, uint8_t *base) {
  int64_t taps = pl->r * pl->s;
  int32_t *bias = (int32_t *)(void *)(base + pl->off_bias);
  for (int64_t k = 0; k < pl->k; k++) {
    int64_t j = k >> 6, c = k & 63, lane = c >> 4, zi = (c >> 2) & 3, l = c & 3;
    int64_t pos = zi * 16 + lane * 4 + l; /* dword in the 4 zmm */
    uint8_t *wk = base + pl->off_w + j * pl->wkg_bytes;
    uint32_t sum = 0;
    for (int64_t t = 0; t < taps; t++) {
      int32_t w = hawq_qweight_get(n, taps, k, t);
      sum += (uint32_t)w;
      wk[(t >> 2) * 256 + pos * 4 + (t & 3)] = (uint8_t)(int8_t)w;
    }
    bias[j * 64 + pos] = folded_bias(pl, n, k, sum);
  }
}

void qrt_convf_pack(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, void *dst) {
  cf_plan pl;
  if (!geometry(m, n, isa, &pl)) return;
  uint8_t *base = (uint8_t *)dst;
  memset(base, 0, (size_t)pl.total);
  memcpy(base, &pl, sizeof pl);
  make_tiles(&pl, (cf_tile *)(void *)(base + pl.off_tile));
  const hawq_qtensor *x = &m->tensors[n->inputs[0]];
  int64_t xmax = -(int64_t)x->lo > x->hi ? -(int64_t)x->lo : x->hi;
  /* the node's weight rows (R*S*C/g; pl's group sizes are merged for depthwise) */
  int64_t row_len = n->kernel[0] * n->kernel[1] * qrt_exact_quotient(x->c, n->groups);
  for (int64_t g = 0; g < pl.groups; g++) {
    for (int64_t blk = 0; blk < pl.nblk; blk++) {
      int64_t kl = blk * pl.lanes;
      pack_epilogue(&pl, n, base + pl.off_ep + (g * pl.nblk + blk) * pl.ep_bytes, g * pl.kg + kl,
                    min64(pl.lanes, pl.kg - kl), xmax, row_len);
    }
  }

  int64_t *seg = (int64_t *)(void *)(base + pl.off_seg);
  if (pl.dwc) {
    for (int64_t t = 0; t < pl.r * pl.s; t++) {
      int64_t r = qrt_quotient(t, pl.s), s = t - r * pl.s;
      seg[t] = r * pl.dh * pl.rsb + s * pl.dw * pl.pcb; /* (the padding taps stay 0) */
    }
    pack_depthwise(&pl, n, base);
    return;
  }
  bool merged = pl.nseg == pl.r; /* (with S = 1 both readings are the same) */
  for (int64_t r = 0, i = 0; r < pl.r; r++) {
    if (merged) {
      seg[i++] = r * pl.dh * pl.rsb;
      continue;
    }
    for (int64_t s = 0; s < pl.s; s++) seg[i++] = r * pl.dh * pl.rsb + s * pl.dw * pl.pcb;
  }

  int64_t len = pl.r * pl.s * pl.cg, lanes = pl.lanes;
  int shift = pl.esz == 1 ? 2 : 1; /* values per unit: 4 or 2 */
  int32_t *bias = (int32_t *)(void *)(base + pl.off_bias);
  for (int64_t g = 0; g < pl.groups; g++) {
    uint8_t *wg = base + pl.off_w + g * pl.wgrp_bytes;
    for (int64_t j = 0, blk = 0; j < pl.nkgrp; j++) {
      int64_t nb = min64(pl.nmax, pl.nblk - j * pl.nmax);
      uint8_t *wk = wg + j * pl.wkg_bytes;
      for (int64_t nn = 0; nn < nb; nn++, blk++) {
        for (int64_t l = 0; l < lanes; l++) {
          int64_t kl = blk * lanes + l, k = g * pl.kg + kl;
          if (kl >= pl.kg) continue;
          /* Weights: value i = (r * S + s) * cg + c of channel k's row. */
          uint32_t sum = 0;
          for (int64_t r = 0, i = 0; r < pl.r; r++) {
            for (int64_t s = 0; s < pl.s; s++) {
              int64_t sg = merged ? r : r * pl.s + s, u0 = merged ? s * pl.cg : 0;
              for (int64_t c = 0; c < pl.cg; c++, i++) {
                int32_t w = hawq_qweight_get(n, len, k, i);
                sum += (uint32_t)w;
                int64_t u = u0 + c, unit = u >> shift, t = u & ((1 << shift) - 1);
                int64_t at = ((sg * pl.nunit + unit) * nb + nn) * pl.blk_bytes +
                             (l << shift) * pl.esz + t * pl.esz;
                if (pl.esz == 1) {
                  wk[at] = (uint8_t)(int8_t)w;
                } else {
                  int16_t w16 = (int16_t)w;
                  memcpy(wk + at, &w16, sizeof w16);
                }
              }
            }
          }
          bias[(g * pl.nblk + blk) * lanes + l] = folded_bias(&pl, n, k, sum);
        }
      }
    }
  }
}

/* ---- The padded image ---- */

/* count elements of the image's padding value at dst. */
static void fill_pad(const cf_plan *pl, uint8_t *dst, int64_t count) {
  memset(dst, pl->esz == 1 ? pl->zp : 0, (size_t)(count * pl->esz));
}

/* A row of w pixels of an odd number c < 16 of 4-bit values ((c + 1) / 2 bytes each, the last
 * high nibble unused); c = 1 and 3 (grey and RGB input layers) in registers, others 64 pixels
 * at a time unpacked whole into a buffer (c + 1 values each),
 * then each pixel's c values copied out with one 16-byte move, which spills into the next
 * pixels' places before they are written (the row's last pixels are copied exactly). */
static void unpack_odd_row(const uint8_t *src, uint8_t *dst, int64_t w, int64_t c, uint8_t flip) {
  if (cf_unpack_odd_avx512(src, dst, w, c, flip)) return;
  uint8_t buf[64 * 16];
  int64_t xrb = (c + 1) >> 1, end = w * c;
  for (int64_t px0 = 0; px0 < w; px0 += 64) {
    int64_t n = w - px0 < 64 ? w - px0 : 64;
    cf_unpack_nibbles_avx512(src + px0 * xrb, buf, n * xrb, flip);
    for (int64_t i = 0; i < n; i++) {
      uint8_t *d = dst + (px0 + i) * c;
      const uint8_t *b = buf + i * (c + 1);
      if (d - dst + 16 <= end) {
        memcpy(d, b, 16);
      } else {
        for (int64_t j = 0; j < c; j++) d[j] = b[j];
      }
    }
  }
}

/* One input row of W pixels (xr) as image elements at dst. */
static void fill_pixels(const cf_plan *pl, const uint8_t *xr, uint8_t *dst) {
  int64_t n = pl->w * pl->c;
  hawq_qtype t = (hawq_qtype)pl->xt;
  if (pl->esz == 1) {
    if (t == HAWQ_QT_U8) {
      memcpy(dst, xr, (size_t)n);
    } else if (t == HAWQ_QT_I8) {
      for (int64_t i = 0; i < n; i++) dst[i] = (uint8_t)(xr[i] ^ 0x80);
    } else if (!(pl->c & 1)) {
      /* Even channel counts leave no unused nibble: the row is W * C / 2 whole bytes. */
      cf_unpack_nibbles_avx512(xr, dst, (pl->w * pl->c) >> 1, t == HAWQ_QT_I4 ? 8 : 0);
    } else if (pl->c < 16) {
      unpack_odd_row(xr, dst, pl->w, pl->c, t == HAWQ_QT_I4 ? 8 : 0);
    } else {
      uint8_t flip = t == HAWQ_QT_I4 ? 8 : 0; /* x + 8 for signed nibbles */
      for (int64_t px = 0; px < pl->w; px++, xr += pl->xrb, dst += pl->c) {
        int64_t c = 0;
        for (; c + 1 < pl->c; c += 2) {
          uint8_t b = xr[c >> 1];
          dst[c] = (uint8_t)((b & 15) ^ flip);
          dst[c + 1] = (uint8_t)((b >> 4) ^ flip);
        }
        if (c < pl->c) dst[c] = (uint8_t)((xr[c >> 1] & 15) ^ flip);
      }
    }
    return;
  }
  int16_t *d16 = (int16_t *)(void *)dst;
  if (t == HAWQ_QT_U8) {
    for (int64_t i = 0; i < n; i++) d16[i] = xr[i];
  } else if (t == HAWQ_QT_I8) {
    for (int64_t i = 0; i < n; i++) d16[i] = (int8_t)xr[i];
  } else {
    for (int64_t px = 0; px < pl->w; px++, xr += pl->xrb, d16 += pl->c) {
      for (int64_t c = 0; c < pl->c; c++) d16[c] = (int16_t)hawq_qrow_get(t, xr, c);
    }
  }
}

/* One input pixel (xr, c values) as image elements at dst. */
static void fill_pixel(const cf_plan *pl, const uint8_t *xr, uint8_t *dst) {
  hawq_qtype t = (hawq_qtype)pl->xt;
  if (pl->esz == 1 && (t == HAWQ_QT_U4 || t == HAWQ_QT_I4) && !(pl->c & 1)) {
    cf_unpack_nibbles_avx512(xr, dst, pl->c >> 1, t == HAWQ_QT_I4 ? 8 : 0);
  } else if (pl->esz == 1 && t == HAWQ_QT_U8) {
    memcpy(dst, xr, (size_t)pl->c);
  } else if (pl->esz == 1) {
    /* the image holds x + 128 (I8) or x + 8 (I4): the low 8 or 4 bits with the sign bit flipped */
    bool four = t == HAWQ_QT_U4 || t == HAWQ_QT_I4;
    int mask = four ? 15 : 0xFF, flip = t == HAWQ_QT_I8 ? 0x80 : t == HAWQ_QT_I4 ? 8 : 0;
    for (int64_t c = 0; c < pl->c; c++) dst[c] = (uint8_t)((hawq_qrow_get(t, xr, c) & mask) ^ flip);
  } else {
    int16_t *d16 = (int16_t *)(void *)dst;
    for (int64_t c = 0; c < pl->c; c++) d16[c] = (int16_t)hawq_qrow_get(t, xr, c);
  }
}

/* A strided 1x1 convolution reads only the image rows and columns that are multiples of its
 * strides: only those are filled (the rest is never read). */
static void fill_rows_strided(const cf_plan *pl, const uint8_t *xs, uint8_t *img, int64_t r0,
                              int64_t r1) {
  for (int64_t hr = qrt_quotient(r0 + pl->sh - 1, pl->sh) * pl->sh; hr < r1; hr += pl->sh) {
    uint8_t *row = img + hr * pl->rsb;
    int64_t ih = hr - pl->pt;
    for (int64_t pc = 0; pc < pl->wp; pc += pl->sw) {
      int64_t iw = pc - pl->pl;
      if (ih < 0 || ih >= pl->h || iw < 0 || iw >= pl->w) {
        fill_pad(pl, row + pc * pl->pcb, pl->c);
      } else {
        fill_pixel(pl, xs + (ih * pl->w + iw) * pl->xrb, row + pc * pl->pcb);
      }
    }
  }
}

/* Image rows [r0, r1) of the sample xs; the last row's owner also clears the slack. */
static void fill_rows(const cf_plan *pl, const uint8_t *xs, uint8_t *img, int64_t r0, int64_t r1) {
  int64_t pr = pl->wp - pl->w - pl->pl;
  bool strided_1x1 = pl->r == 1 && pl->s == 1 && (pl->sh > 1 || pl->sw > 1) && pl->groups == 1;
  for (int64_t hr = r0; hr < r1 && !strided_1x1; hr++) {
    uint8_t *row = img + hr * pl->rsb;
    int64_t ih = hr - pl->pt;
    if (ih < 0 || ih >= pl->h) {
      fill_pad(pl, row, pl->wp * pl->c);
      continue;
    }
    fill_pad(pl, row, pl->pl * pl->c);
    fill_pixels(pl, xs + ih * pl->w * pl->xrb, row + pl->pl * pl->pcb);
    fill_pad(pl, row + (pl->pl + pl->w) * pl->pcb, pr * pl->c);
  }
  if (strided_1x1) fill_rows_strided(pl, xs, img, r0, r1);
  if (r1 == pl->hp && r0 < r1) {
    int64_t used = pl->hp * pl->rsb;
    memset(img + used, 0, (size_t)(pl->img_bytes - used));
  }
}

/* ---- The driver ---- */

/* Work items [i0, i1) in the order (sample, group, tile, k-group): a tile's input stays in L1
 * across its k-groups, and its output pixels' rows are completed together; or, when a group's
 * weights would not stay in L2 across tiles, (sample, group, k-group, tile). Samples count
 * from the one cx holds (step_samples: cx holds sample 0 of all). */
static void unpack_tile(const cf_plan *pl, const uint8_t *xs, const cf_tile *t, uint8_t *buf) {
  uint8_t flip = pl->xt == HAWQ_QT_I4 ? 8 : 0;
  for (int row = 0; row < 2; row++) {
    int64_t n = row ? t->mb : t->ma;
    if (!n) continue; /* (a one-row tile: no pointer to a row past the input) */
    const uint8_t *src = xs + ((t->p + row) * pl->sh * pl->w + t->q0 * pl->sw) * pl->xrb;
    uint8_t *dst = buf + (row ? t->ma : 0) * pl->pcb;
    if (pl->sw == 1) {
      cf_unpack_nibbles_avx512(src, dst, n * pl->xrb, flip);
    } else {
      for (int64_t i = 0; i < n; i++) {
        cf_unpack_nibbles_avx512(src + i * pl->sw * pl->xrb, dst + i * pl->pcb, pl->xrb, flip);
      }
    }
  }
}

static void run_items(const cf_plan *pl, cf_tile_fn fn, const cf_ctx *cx, int64_t i0, int64_t i1,
                      bool step_samples, uint8_t *tile_buf) {
  const cf_tile *tiles = (const cf_tile *)((const uint8_t *)pl + pl->off_tile);
  int64_t n0 = pl->kmajor ? pl->ntiles : pl->nkgrp, n1 = pl->kmajor ? pl->nkgrp : pl->ntiles;
  int64_t q1 = qrt_quotient(i0, n0), i_0 = i0 - q1 * n0; /* fastest index */
  int64_t q2 = qrt_quotient(q1, n1), i_1 = q1 - q2 * n1;
  int64_t b = qrt_quotient(q2, pl->groups), g = q2 - b * pl->groups;
  cf_ctx c = *cx;
  const int64_t first_tile = i_1; /* (tile-major order) */
  const cf_tile *unpacked = NULL; /* the tile tile_buf holds, of sample unpacked_b */
  int64_t unpacked_b = -1;
  for (int64_t i = i0; i < i1; i++) {
    if (step_samples) {
      c.img = cx->img + b * pl->xsample;
      c.res = cx->res ? cx->res + b * pl->rsample : NULL;
      c.y = cx->y + b * pl->ysample;
      c.y2 = cx->y2 ? cx->y2 + b * pl->y2sample : NULL;
    }
    if (pl->unpack_tiles) { /* tile-major order (kmajor is 0): a tile's k-groups follow it */
      if (&tiles[i_1] != unpacked || b != unpacked_b) {
        unpack_tile(pl, c.img, &tiles[i_1], tile_buf);
        unpacked = &tiles[i_1], unpacked_b = b;
      }
      c.tile_px = tile_buf;
    }
    if (pl->kmajor) {
      fn(pl, &c, g, i_1, &tiles[i_0]);
    } else {
      c.first_tile = i - i0 < pl->nkgrp && i_1 == first_tile;
      fn(pl, &c, g, i_0, &tiles[i_1]);
    }
    if (++i_0 == n0) {
      i_0 = 0;
      if (++i_1 == n1) {
        i_1 = 0;
        if (++g == pl->groups) g = 0, b++;
      }
    }
  }
}

void qrt_convf_run(const hawq_qmodel *m, const hawq_qnode *n, hawq_isa isa, const void *packed,
                   const uint8_t *x, const uint8_t *res, uint8_t *y, uint8_t *y2, void *scratch,
                   int batch, int threads) {
  (void)m, (void)n; /* everything the kernels read is in the packed form */
  (void)threads;    /* (without OpenMP) */
  const cf_plan *pl = (const cf_plan *)packed;
  cf_tile_fn fn = isa != HAWQ_ISA_AVX512VNNI ? cf_tile_avx2
                  : pl->dwc                  ? cf_tile_dw_avx512vnni
                                             : cf_tile_avx512vnni;
  int64_t per_sample = pl->groups * pl->nkgrp * pl->ntiles;
  uint8_t *img = (uint8_t *)scratch;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    int64_t i0, i1;
    if (pl->inplace) {
      cf_ctx cx = {x, res, y, NULL, pl->y2t >= 0 ? y2 : NULL, false};
      int thread = 0;
#ifdef _OPENMP
      thread = omp_get_thread_num();
#endif
      qrt_thread_range(batch * per_sample, &i0, &i1);
      run_items(pl, fn, &cx, i0, i1, true, img + thread * pl->ubuf_bytes);
    } else {
      for (int64_t b = 0; b < batch; b++) {
        int64_t r0, r1;
        qrt_thread_range(pl->hp, &r0, &r1);
        fill_rows(pl, x + b * pl->xsample, img, r0, r1);
#pragma omp barrier
        cf_ctx cx = {img,  res ? res + b * pl->rsample : NULL,          y + b * pl->ysample,
                     NULL, pl->y2t >= 0 ? y2 + b * pl->y2sample : NULL, false};
        qrt_thread_range(per_sample, &i0, &i1);
        run_items(pl, fn, &cx, i0, i1, false, NULL);
        if (b + 1 < batch) {
#pragma omp barrier /* before the next sample's image overwrites this one */
        }
      }
    }
  }
}
