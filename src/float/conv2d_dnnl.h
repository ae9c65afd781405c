/* What the inference (conv2d.c) and training (conv2d_train.c) convolutions share: the oneDNN
 * descriptions of one convolution shape, and oneDNN errors as hawq errors. Internal to
 * src/float. */
#ifndef HAWQ_FLOAT_CONV2D_DNNL_H
#define HAWQ_FLOAT_CONV2D_DNNL_H

#include <oneapi/dnnl/dnnl.h>

#include "float/ops.h"

typedef struct hawq_conv2d_descs {
  dnnl_memory_desc_t src, dst; /* NHWC: a blocked layout would cost a reorder per activation */
  dnnl_memory_desc_t bias;
  dnnl_memory_desc_t w_user; /* hawq's (K, R, S, C/g): ohwi, or gohwi when grouped */
  dnnl_memory_desc_t w_any;  /* the same dims in the kernel's choice of layout */
  dnnl_dims_t strides, dilates, pad_l, pad_r;
} hawq_conv2d_descs;

dnnl_status_t hawq_conv2d_descs_init(const hawq_conv2d_shape *s, hawq_conv2d_descs *d);

/* A oneDNN failure as a hawq error ("oneDNN could not <what> (status N)"). */
hawq_status hawq_dnnl_fail(hawq_error *err, const char *what, dnnl_status_t s);

#endif
