/* ONNX writing through protobuf-c: unpack, change, pack, write atomically. */
#include "onnx/export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/preprocess.h"
#include "core/status.h"
#include "onnx/onnx_internal.h"

/* "a,b,c", each the shortest decimal that reads back as the same float. */
static void format_list(const float *v, int n, char *buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (int k = 0; k < n && used < size; k++) {
    char one[32];
    for (int digits = 1; digits <= 9; digits++) {
      snprintf(one, sizeof one, "%.*g", digits, (double)v[k]);
      if (strtof(one, NULL) == v[k]) break;
    }
    used += (size_t)snprintf(buf + used, size - used, "%s%s", k ? "," : "", one);
  }
}

hawq_status hawq_onnx_write_preprocess(const char *in_path, const char *out_path,
                                       const hawq_preprocess *pp, hawq_error *err) {
  void *data;
  size_t size;
  hawq_status st = hawq_read_file(in_path, INT32_MAX, NULL, &data, &size, err);
  if (st) return st;
  if (!onnx_nesting_within(data, size, HAWQ_MAX_ONNX_NESTING)) {
    free(data);
    return hawq_fail(err, HAWQ_ERR_UNSUPPORTED, "%s: messages nested too deep", in_path);
  }
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
  free(data);
  if (!m) return hawq_fail(err, HAWQ_ERR_PARSE, "%s: not a valid ONNX model", in_path);

  /* The kept entries plus our three, in a new array; the unpacked ones are restored before
   * protobuf-c frees the message. */
  char scale[64], mean[HAWQ_MAX_CHANNELS * 20], stdv[HAWQ_MAX_CHANNELS * 20];
  format_list(&pp->pixel_scale, 1, scale, sizeof scale);
  format_list(pp->mean, pp->channels, mean, sizeof mean);
  format_list(pp->std, pp->channels, stdv, sizeof stdv);
  Onnx__StringStringEntryProto ours[3];
  const char *keys[3] = {HAWQ_META_PIXEL_SCALE, HAWQ_META_MEAN, HAWQ_META_STD};
  char *values[3] = {scale, mean, stdv};
  Onnx__StringStringEntryProto **props = malloc((m->n_metadata_props + 3) * sizeof *props);
  uint8_t *packed = NULL;
  if (!props) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", out_path);
    goto done;
  }
  size_t n = 0;
  for (size_t k = 0; k < m->n_metadata_props; k++) {
    const char *key = m->metadata_props[k]->key ? m->metadata_props[k]->key : "";
    if (strcmp(key, keys[0]) && strcmp(key, keys[1]) && strcmp(key, keys[2])) {
      props[n++] = m->metadata_props[k];
    }
  }
  for (int k = 0; k < 3; k++) {
    onnx__string_string_entry_proto__init(&ours[k]);
    ours[k].key = (char *)keys[k];
    ours[k].value = values[k];
    props[n++] = &ours[k];
  }
  Onnx__StringStringEntryProto **saved = m->metadata_props;
  size_t saved_n = m->n_metadata_props;
  m->metadata_props = props;
  m->n_metadata_props = n;
  size_t out_size = onnx__model_proto__get_packed_size(m);
  packed = malloc(out_size ? out_size : 1);
  if (packed) onnx__model_proto__pack(m, packed);
  m->metadata_props = saved;
  m->n_metadata_props = saved_n;
  st = packed ? hawq_write_file_atomic(out_path, packed, out_size, err)
              : hawq_fail(err, HAWQ_ERR_NO_MEMORY, "%s: out of memory", out_path);
done:
  free(packed);
  free(props);
  onnx__model_proto__free_unpacked(m, NULL);
  return st;
}
