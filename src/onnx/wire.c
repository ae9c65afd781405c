/* A pre-check of the protobuf wire format before protobuf-c unpacks a model: protobuf-c
 * recurses once per nested message, and ONNX messages can nest without bound (a graph inside an
 * attribute inside a node inside a graph ..., or sequence types of sequence types), so a small
 * hostile file could overflow the stack. This walk follows only the fields through which ONNX
 * messages recurse, iteratively, and reports whether the nesting stays within a limit. Anything
 * malformed is left for protobuf-c to reject. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx/onnx_internal.h"

typedef enum msg_kind {
  MSG_NONE,
  MSG_MODEL,
  MSG_GRAPH,
  MSG_NODE,
  MSG_ATTRIBUTE,
  MSG_FUNCTION,
  MSG_VALUE_INFO,
  MSG_TYPE,
  MSG_TYPE_WRAPPER, /* TypeProto.Sequence / .Optional (elem_type = 1), .Map (2) */
} msg_kind;

/* The kind of the message in `field` of a message of kind k, for the recursive fields only
 * (field numbers from onnx.proto). */
static msg_kind child_kind(msg_kind k, uint64_t field) {
  switch (k) {
    case MSG_MODEL:
      return field == 7 ? MSG_GRAPH : field == 25 ? MSG_FUNCTION : MSG_NONE;
    case MSG_GRAPH:
      return field == 1                                    ? MSG_NODE
             : (field == 11 || field == 12 || field == 13) ? MSG_VALUE_INFO
                                                           : MSG_NONE;
    case MSG_NODE:
      return field == 5 ? MSG_ATTRIBUTE : MSG_NONE;
    case MSG_ATTRIBUTE:
      return (field == 6 || field == 11)    ? MSG_GRAPH
             : (field == 14 || field == 15) ? MSG_TYPE
                                            : MSG_NONE;
    case MSG_FUNCTION:
      return field == 7 ? MSG_NODE : field == 11 ? MSG_ATTRIBUTE : MSG_NONE;
    case MSG_VALUE_INFO:
      return field == 2 ? MSG_TYPE : MSG_NONE;
    case MSG_TYPE:
      return (field == 4 || field == 5 || field == 9) ? MSG_TYPE_WRAPPER : MSG_NONE;
    case MSG_TYPE_WRAPPER:
      return (field == 1 || field == 2) ? MSG_TYPE : MSG_NONE;
    default:
      return MSG_NONE;
  }
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

bool onnx_nesting_within(const uint8_t *buf, size_t len, int max_depth) {
  struct frame {
    const uint8_t *p, *end;
    msg_kind kind;
  } stack[HAWQ_MAX_ONNX_NESTING + 1];
  if (max_depth > HAWQ_MAX_ONNX_NESTING) max_depth = HAWQ_MAX_ONNX_NESTING;
  int top = 0;
  stack[0] = (struct frame){buf, buf + len, MSG_MODEL};
  while (top >= 0) {
    struct frame *f = &stack[top];
    if (f->p >= f->end) {
      top--;
      continue;
    }
    uint64_t key, n;
    if (!read_varint(&f->p, f->end, &key)) return true; /* malformed: protobuf-c will say */
    switch (key & 7) {
      case 0:
        if (!read_varint(&f->p, f->end, &n)) return true;
        break;
      case 1:
        if (f->end - f->p < 8) return true;
        f->p += 8;
        break;
      case 5:
        if (f->end - f->p < 4) return true;
        f->p += 4;
        break;
      case 2: {
        if (!read_varint(&f->p, f->end, &n) || n > (uint64_t)(f->end - f->p)) return true;
        const uint8_t *sub = f->p;
        f->p += n;
        msg_kind k = child_kind(f->kind, key >> 3);
        if (k != MSG_NONE) {
          if (top + 1 >= max_depth) return false;
          stack[++top] = (struct frame){sub, sub + n, k};
        }
        break;
      }
      default:
        return true;
    }
  }
  return true;
}
