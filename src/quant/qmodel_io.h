/* .hqm files: a QModel (quant/qmodel.h) stored as an ONNX ModelProto whose nodes are custom ops
 * of domain "ai.hawq". docs/format.md specifies the format; hawq.h declares the public calls
 * (hawq_qmodel_load, hawq_qmodel_load_buffer, hawq_qmodel_save). This header adds what tests,
 * fuzzers and `hawq info` need beyond them. */
#ifndef HAWQ_QUANT_QMODEL_IO_H
#define HAWQ_QUANT_QMODEL_IO_H

#include <stddef.h>
#include <stdint.h>

#include "quant/qmodel.h"

#define HAWQ_QMODEL_FORMAT "hawq-qmodel" /* metadata hawq.format */
#define HAWQ_QMODEL_FORMAT_VERSION 1 /* metadata hawq.format.version: the one this build reads */
#define HAWQ_QMODEL_DOMAIN "ai.hawq" /* the nodes' operator domain, opset version 1 */
/* Largest file read: protobuf messages are limited to 2 GiB. */
#define HAWQ_QMODEL_MAX_FILE_BYTES ((uint64_t)INT32_MAX)

/* The 64-bit FNV-1a digest of m's canonical serialization (docs/format.md, "Digest"): every
 * field the file stores. Saving writes it to metadata hawq.digest; loading recomputes it from
 * the rebuilt model and refuses a mismatch. m must be valid (hawq_qmodel_validate). */
uint64_t hawq_qmodel_digest(const hawq_qmodel *m);

/* The bytes hawq_qmodel_save writes, in *data (malloc'd, caller frees). m must pass
 * hawq_qmodel_validate; what names the destination in messages (NULL: "<buffer>"). */
hawq_status hawq_qmodel_serialize(const hawq_qmodel *m, const char *what, void **data, size_t *size,
                                  hawq_error *err);

/* hawq_qmodel_load_buffer with options. HAWQ_QMODEL_READ_NO_DIGEST skips the digest check (for
 * fuzzing the checks behind it, and tests of hand-edited files): everything else, validation
 * included, still applies. */
enum { HAWQ_QMODEL_READ_NO_DIGEST = 1 };
hawq_status hawq_qmodel_read_buffer(const void *data, size_t size, const char *name, unsigned flags,
                                    hawq_qmodel **out, hawq_error *err);

#endif
