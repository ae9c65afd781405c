/* Shared layout of the fast convolution kernels (convf.h): the packed form of a node, its
 * geometry, and the entry points of the per-level tile kernels.
 *
 * The convolution is an implicit GEMM over a padded copy of each input sample (the "image"):
 * (H + pads) x (W + pads) pixels of C values each, unpacked from 4-bit and widened to the level's
 * element (u8 for AVX-512 VNNI, int16 for AVX2), padded taps holding the shifted zero zp. The
 * reduction of one output pixel is cut into nseg "segments" of contiguous image bytes, each
 * nunit 4-byte units long (4 u8 values or 2 int16 values per unit):
 *   - row-merged (groups == 1 and the kernel's columns adjacent: dilation 1 or one column): one
 *     segment per kernel row r, covering the S x C values of that row of the window at once, so
 *     that small C (an RGB stem) does not waste lanes;
 *   - per tap otherwise: one segment of C/g values per (r, s).
 * A segment's last unit may reach past its values into the next ones (or the image's slack);
 * the packed weights are zero there. Output channels come in blocks of `lanes` (16 or 8); a
 * k-group is up to nmax blocks computed together; a tile is up to mmax output pixels, on one
 * output row or on two rows (MA pixels on row p, MB on row p + 1, same columns).
 *
 * Signed 8-bit / 4-bit inputs on VNNI (which multiplies u8 by s8) are stored as x + zp
 * (128 / 8) and the bias absorbs -zp * sum(w) modulo 2^32: the accumulation wraps modulo 2^32
 * and the true result fits int32 (validated), so the sum is exact. The image is filled once
 * per sample by all threads; a U8 input without padding whose segments are whole units is read
 * in place instead. Depthwise convs on VNNI (dwc) have their own kernel: the segments are then
 * the taps' offsets, 4 per unit (cf_tile_dw_avx512vnni).
 *
 * Packed form (64-byte aligned parts, offsets from its start): cf_plan, segment offsets
 * (int64), tiles, biases (int32 per block lane, corrections folded), epilogue constants per
 * block (CF_EP_* slots below), weights [group][k-group][segment][unit][block][lane][unit values].
 * Threads split the work items (sample, group, tile, k-group) statically (qrt_thread_range);
 * each output value is computed by one thread, so the results do not depend on their number.
 */
#ifndef HAWQ_QRT_CONVF_INTERNAL_H
#define HAWQ_QRT_CONVF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qrt/convf.h"
#include "qrt/qrt_internal.h"

typedef struct cf_tile {
  int32_t p, q0, ma, mb; /* ma pixels at (p, q0..), mb at (p + 1, q0..) */
} cf_tile;

typedef struct cf_plan {
  int32_t isa;
  int32_t xt, yt, rt; /* input, output, residual types; rt -1 without a residual */
  int32_t ylo, yhi;
  int32_t zp;      /* the image's value of a padded tap, and the shift of the input values */
  int32_t inplace; /* the image is the input sample itself (U8, no padding, whole units) */
  /* in place on 4-bit input (a 1x1 conv without padding): each tile's pixels are unpacked into
   * its thread's buffer (ubuf_bytes each, in the scratch), which stays in L1 */
  int32_t unpack_tiles;
  int32_t lanes;  /* output channels per block: 16 (VNNI) or 8 (AVX2) */
  int32_t esz;    /* bytes per image element: 1 or 2 */
  int32_t nmax;   /* blocks per k-group */
  int32_t mmax;   /* pixels per tile */
  int32_t kmajor; /* work order: k-groups outermost (large weights), else tiles */
  int32_t dwc;    /* depthwise on VNNI (see cf_tile_dw_avx512vnni); groups is then 1 */
  hawq_dyadic rd; /* residual dyadic */
  /* A fused requantization (qrt_convf_fuse_requant), y2t -1 without: a second output
   * y2 = clamp(rescale(y, qd), y2lo, y2hi) of type y2t (U8 or I8) from the clamped 16-bit y */
  int32_t y2t, y2lo, y2hi;
  hawq_dyadic qd;
  int64_t y2rb, y2sample;
  int64_t h, w, c, p, q, k, groups, cg, kg, r, s;
  int64_t sh, sw, dh, dw, pt, pl;
  int64_t hp, wp;        /* the image's rows and columns */
  int64_t pcb, rsb;      /* the image's pixel and row strides, bytes */
  int64_t img_bytes;     /* one image with its slack, 64-byte multiple (0 when in place) */
  int64_t ubuf_bytes;    /* one thread's tile buffer (unpack_tiles), 64-byte multiple */
  int64_t nseg;          /* segments per output pixel */
  int64_t nunit;         /* 4-byte units per segment */
  int64_t nblk;          /* blocks per group */
  int64_t nkgrp;         /* k-groups per group */
  int64_t ntiles;        /* tiles covering one sample's output */
  int64_t xrb, yrb, rrb; /* row bytes of an input, output and residual pixel */
  int64_t xsample, ysample, rsample; /* bytes of one sample */
  int64_t blk_bytes;                 /* weight bytes of one (unit, block): lanes * 4 */
  int64_t wkg_bytes;                 /* weight bytes of a full k-group */
  int64_t wgrp_bytes;                /* weight bytes of one group */
  int64_t ep_bytes;                  /* epilogue constants of one block */
  int64_t off_seg, off_tile, off_bias, off_ep, off_w, total;
} cf_plan;

/* Epilogue constants of one block of L lanes: CF_EP_SLOTS slots of L * 4 bytes each. The exact
 * path (any dyadic) rescales in int64 from the slots m (int32[L]) and, for the even and odd lanes
 * (2i and 2i + 1) apart, the int64[L / 2] slots rounding term 2^(c-1), shift c, lo and hi.
 * When every lane has c >= 32 (or m = 0), the block is "fast": (x * m + 2^(c-1)) >> c is the
 * high half of the int64 sum, shifted right by d = c - 32 as an int32, and the result fits
 * int32 (|x * m| < 2^62), so it is clamped as int32 to lo32 / hi32. Padded lanes (beyond the
 * group's channels) have m = 0, c = 1 and lo = hi = 0: they compute 0. A block with some c < 32
 * is "wide-fast" when the accumulator bound proves every result small, |rescale(acc)| < 2^30
 * (acc bounded by max|x| * sum|w_k| + |bias_k|, as validation proved): then the int64 rescale
 * (shift c) needs no int64 clamp, and the result is clamped as int32. Outputs of 16 bits (the
 * residual stream) have c < 32 and take this path. */
enum {
  CF_EP_M,
  CF_EP_RND_E,
  CF_EP_RND_O,
  CF_EP_SH_E,
  CF_EP_SH_O,
  CF_EP_LO_E,
  CF_EP_LO_O,
  CF_EP_HI_E,
  CF_EP_HI_O,
  CF_EP_D,     /* int32[L]: c - 32 (0 where m = 0) */
  CF_EP_LO32,  /* int32[L] */
  CF_EP_HI32,  /* int32[L] */
  CF_EP_FLAGS, /* int32: [0] the block is fast; [1] it is "wide-fast" (below) */
  CF_EP_SLOTS
};

/* Where one tile's data lives: the sample's image, residual and output. */
typedef struct cf_ctx {
  const uint8_t *img; /* the sample's image (or input sample when in place) */
  const uint8_t *res; /* the sample's residual or NULL */
  uint8_t *y;         /* the sample's output */
  /* unpack_tiles: the tile's pixels, unpacked, its first row's then its second's (pixel
   * stride pcb); NULL otherwise */
  const uint8_t *tile_px;
  uint8_t *y2; /* the sample's fused second output (y2t >= 0), else NULL */
  /* tile-major order: this tile is the first this thread computes, so its k-groups' weights
   * come from L3; each k-group prefetches the next one's into L2 */
  bool first_tile;
} cf_ctx;

/* The per-level tile kernels: computes tile t of k-group j of group g of one sample. */
typedef void (*cf_tile_fn)(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j,
                           const cf_tile *t);
void cf_tile_avx512vnni(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j,
                        const cf_tile *t);
void cf_tile_avx2(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j, const cf_tile *t);
/* Depthwise on VNNI: k-group j is channels [64j, 64j + 64), the segments are the taps' offsets
 * (4 per unit); the weights of a unit are 4 zmm of 4 taps per channel, channel 16L + 4i + l in
 * zmm i, dword 4L + l (the order vpunpck*bw / *wd make of 4 taps' loads); biases alike. */
void cf_tile_dw_avx512vnni(const cf_plan *pl, const cf_ctx *cx, int64_t g, int64_t j,
                           const cf_tile *t);

/* 4-bit inputs unpacked into the VNNI image (esz 1, so only on that level): bytes packed bytes
 * at src as 2 * bytes values at dst, low nibble first, each XORed with flip (8 turns a signed
 * nibble v into v + 8). The odd form does a row of w pixels of c values ((c + 1) / 2 bytes each,
 * the last high nibble unused) into w * c bytes, for c = 1 and 3 (false for any other c). */
void cf_unpack_nibbles_avx512(const uint8_t *src, uint8_t *dst, int64_t bytes, uint8_t flip);
bool cf_unpack_odd_avx512(const uint8_t *src, uint8_t *dst, int64_t w, int64_t c, uint8_t flip);

/* The tile sizes each level's kernels are instantiated for. */
enum { CF_VNNI_MMAX = 14, CF_AVX2_MMAX = 6, CF_DW_MMAX = 4 };

#endif
