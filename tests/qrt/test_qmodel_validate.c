/* hawq_qmodel_validate: a small valid model using every op passes; then, rule by rule, one thing
 * is broken and validation must fail with a message naming the node or tensor and the field.
 * Also the type helpers, weight bytes and cost of qmodel.c. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "quant/qmodel.h"
#include "test_util.h"

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  REQUIRE(p, "out of memory");
  return p;
}

static hawq_dyadic one = {1 << 30, 30};

static hawq_dyadic dy(int32_t m, int32_t c) {
  hawq_dyadic d = {m, c};
  return d;
}

static void dyadics(hawq_qnode *n, int count) {
  n->n_dyadic = count;
  n->dyadic = xcalloc((size_t)count, sizeof *n->dyadic);
  for (int i = 0; i < count; i++) n->dyadic[i] = one;
}

static void geometry(hawq_qnode *n, int k, int s, int pad) {
  n->kernel[0] = n->kernel[1] = k;
  n->stride[0] = n->stride[1] = s;
  n->dilation[0] = n->dilation[1] = 1;
  for (int i = 0; i < 4; i++) n->pad[i] = pad;
}

/* A CONV's arrays: weights all `w` (packed when bits <= 4), biases 0. */
static void conv_arrays(hawq_qnode *n, int bits, int64_t k, int64_t len, int w) {
  n->groups = 1;
  n->weight_bits = bits;
  int64_t rb = bits <= 4 ? (len + 1) / 2 : len;
  n->weight = xcalloc((size_t)(k * rb), 1);
  for (int64_t c = 0; c < k; c++) {
    for (int64_t i = 0; i < len; i++) {
      uint8_t *row = (uint8_t *)n->weight + c * rb;
      if (bits > 4)
        row[i] = (uint8_t)(int8_t)w;
      else
        row[i / 2] |= (uint8_t)((w & 15) << (4 * (i % 2)));
    }
  }
  n->bias = xcalloc((size_t)k, sizeof *n->bias);
  dyadics(n, (int)k);
}

enum { T_PIX, T_X, T_C1, T_Q1, T_C2, T_SUM, T_Q2, T_MP, T_AP, T_CAT, T_LOGITS };
enum { N_INPUT, N_CONV1, N_REQ1, N_CONV2, N_ADD, N_REQ2, N_MAX, N_AVG, N_CAT, N_FC };

/* pixels 4x4x3 -> INPUT -> x -> conv1 (3x3, pad 1, 4-bit) -> c1 (I16) -> requant1 -> q1 (U4)
 * -> conv2 (1x1, 8-bit, residual c1) -> c2 (I16); add(c1, c2) -> sum -> requant2 -> q2 (U8 4x4x4);
 * maxpool 2/2 -> mp (U8 2x2x4); avgpool 2/2 -> ap (I8 2x2x4); concat(mp, ap) -> cat (U8 2x2x8);
 * fc (2x2 kernel, 6-bit) -> logits (I32 1x1x5). */
static hawq_qmodel *base(void) {
  hawq_qmodel *m = hawq_qmodel_new();
  REQUIRE(m, "new");
  struct {
    const char *name;
    hawq_qtype t;
    int32_t lo, hi;
    int64_t h, w, c;
  } ts[] = {{"pixels", HAWQ_QT_U8, 0, 255, 4, 4, 3},
            {"x", HAWQ_QT_U8, 0, 255, 4, 4, 3},
            {"c1", HAWQ_QT_I16, -32767, 32767, 4, 4, 4},
            {"q1", HAWQ_QT_U4, 0, 15, 4, 4, 4},
            {"c2", HAWQ_QT_I16, -32767, 32767, 4, 4, 4},
            {"sum", HAWQ_QT_I16, -32767, 32767, 4, 4, 4},
            {"q2", HAWQ_QT_U8, 0, 255, 4, 4, 4},
            {"mp", HAWQ_QT_U8, 0, 255, 2, 2, 4},
            {"ap", HAWQ_QT_I8, -127, 127, 2, 2, 4},
            {"cat", HAWQ_QT_U8, 0, 255, 2, 2, 8},
            {"logits", HAWQ_QT_I32, INT32_MIN, INT32_MAX, 1, 1, 5}};
  for (int i = 0; i < (int)(sizeof ts / sizeof ts[0]); i++) {
    REQUIRE(hawq_qmodel_add_tensor(m, ts[i].name, ts[i].t, ts[i].lo, ts[i].hi, ts[i].h, ts[i].w,
                                   ts[i].c, 0.5) == i,
            "add_tensor");
  }
  m->input = T_PIX;
  m->output = T_LOGITS;
  struct {
    hawq_qop op;
    const char *name;
    int n, in[2], out;
  } ns[] = {{HAWQ_QOP_INPUT, "input", 1, {T_PIX}, T_X},
            {HAWQ_QOP_CONV, "conv1", 1, {T_X}, T_C1},
            {HAWQ_QOP_REQUANT, "requant1", 1, {T_C1}, T_Q1},
            {HAWQ_QOP_CONV, "conv2", 2, {T_Q1, T_C1}, T_C2},
            {HAWQ_QOP_ADD, "add", 2, {T_C1, T_C2}, T_SUM},
            {HAWQ_QOP_REQUANT, "requant2", 1, {T_SUM}, T_Q2},
            {HAWQ_QOP_MAXPOOL, "maxpool", 1, {T_Q2}, T_MP},
            {HAWQ_QOP_AVGPOOL, "avgpool", 1, {T_Q2}, T_AP},
            {HAWQ_QOP_CONCAT, "concat", 2, {T_MP, T_AP}, T_CAT},
            {HAWQ_QOP_CONV, "fc", 1, {T_CAT}, T_LOGITS}};
  for (int i = 0; i < (int)(sizeof ns / sizeof ns[0]); i++) {
    REQUIRE(hawq_qmodel_add_node(m, ns[i].op, ns[i].name, ns[i].n, ns[i].in, ns[i].out) == i,
            "add_node");
  }
  hawq_qnode *n = m->nodes;
  n[N_INPUT].input_mul = xcalloc(3, sizeof(int32_t));
  n[N_INPUT].input_add = xcalloc(3, sizeof(int32_t));
  for (int c = 0; c < 3; c++) n[N_INPUT].input_mul[c] = 1;
  dyadics(&n[N_INPUT], 3);
  geometry(&n[N_CONV1], 3, 1, 1);
  conv_arrays(&n[N_CONV1], 4, 4, 27, -7);
  dyadics(&n[N_REQ1], 1);
  geometry(&n[N_CONV2], 1, 1, 0);
  conv_arrays(&n[N_CONV2], 8, 4, 4, 100);
  n[N_CONV2].residual_dyadic = one;
  dyadics(&n[N_ADD], 2);
  dyadics(&n[N_REQ2], 1);
  geometry(&n[N_MAX], 2, 2, 0);
  geometry(&n[N_AVG], 2, 2, 0);
  dyadics(&n[N_AVG], 4);
  dyadics(&n[N_CAT], 2);
  geometry(&n[N_FC], 2, 1, 0);
  conv_arrays(&n[N_FC], 6, 5, 32, 31);
  return m;
}

static int64_t failures_expected = 0;

/* Validation of m must fail with a message holding `what`'s name and every given part. */
static void expect_fail(hawq_qmodel *m, const char *label, const char *part1, const char *part2) {
  hawq_error err = {HAWQ_OK, ""};
  hawq_status st = hawq_qmodel_validate(m, "test.hqm", &err);
  CHECK(st != HAWQ_OK, "%s: validation passed", label);
  if (st != HAWQ_OK) {
    failures_expected++;
    CHECK(strncmp(err.msg, "test.hqm: ", 10) == 0,
          "%s: message '%s' does not start with the source", label, err.msg);
    CHECK(strstr(err.msg, part1), "%s: message '%s' lacks '%s'", label, err.msg, part1);
    CHECK(!part2 || strstr(err.msg, part2), "%s: message '%s' lacks '%s'", label, err.msg, part2);
    CHECK(!strchr(err.msg, '\n'), "%s: message has a newline", label);
  }
}

static void expect_pass(hawq_qmodel *m, const char *label) {
  hawq_error err = {HAWQ_OK, ""};
  hawq_status st = hawq_qmodel_validate(m, "test.hqm", &err);
  CHECK(st == HAWQ_OK, "%s: %s", label, err.msg);
  hawq_qmodel_destroy(m);
}

/* Sets weight i of output channel k of a packed (bits <= 4) CONV row of len values. */
static void set_nibble(hawq_qnode *n, int64_t len, int64_t k, int64_t i, int v) {
  uint8_t *b = (uint8_t *)n->weight + k * ((len + 1) / 2) + i / 2;
  int shift = 4 * (int)(i % 2);
  *b = (uint8_t)((*b & ~(15 << shift)) | ((v & 15) << shift));
}

/* Breaks a fresh base model with stmt, expects failure, then frees it (restoring counts that
 * stmt lowered, so that destroy frees everything). */
#define BREAK(label, stmt, p1, p2)                          \
  do {                                                      \
    hawq_qmodel *m = base();                                \
    hawq_qnode *n = m->nodes;                               \
    hawq_qtensor *t = m->tensors;                           \
    int n_tensors = m->n_tensors, n_nodes = m->n_nodes;     \
    (void)n, (void)t;                                       \
    stmt;                                                   \
    expect_fail(m, label, p1, p2);                          \
    if (m->n_tensors < n_tensors) m->n_tensors = n_tensors; \
    if (m->n_nodes < n_nodes) m->n_nodes = n_nodes;         \
    hawq_qmodel_destroy(m);                                 \
  } while (0)

#define KEEP(label, stmt)         \
  do {                            \
    hawq_qmodel *m = base();      \
    hawq_qnode *n = m->nodes;     \
    hawq_qtensor *t = m->tensors; \
    (void)n, (void)t;             \
    stmt;                         \
    expect_pass(m, label);        \
  } while (0)

static void test_model_level(void) {
  KEEP("base model", (void)0);
  BREAK("no tensors", m->n_tensors = 0, "tensors", NULL);
  BREAK("no nodes", m->n_nodes = 0, "nodes", NULL);
  BREAK("input index", m->input = 99, "input tensor index 99", NULL);
  BREAK("output index", m->output = -1, "output tensor index -1", NULL);
  BREAK("output is input", m->output = T_PIX, "output tensor index", NULL);
  BREAK("input type", t[T_PIX].type = HAWQ_QT_I8; t[T_PIX].lo = -128;
        t[T_PIX].hi = 127, "tensor 'pixels'", "expected u8 [0, 255]");
  BREAK("input range", t[T_PIX].hi = 200, "tensor 'pixels'", "expected u8 [0, 255]");
  BREAK("output type", t[T_LOGITS].type = HAWQ_QT_I16; t[T_LOGITS].lo = -5;
        t[T_LOGITS].hi = 5, "tensor 'logits'", "expected i32 1 x 1");
  BREAK("output shape", t[T_LOGITS].h = 2, "tensor 'logits'", "expected i32 1 x 1");
}

static void test_tensors(void) {
  BREAK("zero dim", t[T_C1].h = 0, "tensor 'c1'", "dimension outside");
  BREAK("negative dim", t[T_C1].c = -4, "tensor 'c1'", "dimension outside");
  BREAK("huge dim", t[T_C1].w = (int64_t)1 << 40, "tensor 'c1'", "dimension outside");
  BREAK("too many elements", t[T_C1].h = 1 << 16;
        t[T_C1].w = 1 << 16, "tensor 'c1'", "more than 2^31 elements");
  BREAK("lo > hi", t[T_Q1].lo = 9; t[T_Q1].hi = 8, "tensor 'q1'", "range [9, 8]");
  BREAK("hi beyond type", t[T_Q1].hi = 16, "tensor 'q1'", "within u4 [0, 15]");
  BREAK("lo beyond type", t[T_AP].lo = -129, "tensor 'ap'", "within i8 [-128, 127]");
  BREAK("bad type", t[T_AP].type = (hawq_qtype)99, "tensor 'ap'", "type is 99");
  BREAK("zero scale", t[T_MP].scale = 0, "tensor 'mp'", "scale");
  BREAK("nan scale", t[T_MP].scale = NAN, "tensor 'mp'", "scale");
  BREAK("inf scale", t[T_MP].scale = INFINITY, "tensor 'mp'", "scale");
  BREAK("negative scale", t[T_MP].scale = -1, "tensor 'mp'", "scale");
  BREAK("unnamed tensor", free(t[T_MP].name); t[T_MP].name = NULL, "tensor 7", "no name");
}

static void test_graph(void) {
  BREAK("unproduced tensor", hawq_qmodel_add_tensor(m, "orphan", HAWQ_QT_U8, 0, 255, 1, 1, 1, 1.0),
        "tensor 'orphan'", "no node produces it");
  BREAK("produced twice", n[N_REQ2].output = T_Q1, "node 'requant2' (QRequant)",
        "produced a second time");
  BREAK("producer field", t[T_Q1].producer = 7, "node 'requant1' (QRequant)",
        "records producer 7, expected 2");
  BREAK("input has producer", t[T_PIX].producer = 0, "tensor 'pixels'", "expected -1");
  BREAK("node writes input", n[N_REQ1].output = T_PIX, "node 'requant1'", "model input");
  BREAK("output index", n[N_REQ1].output = 99, "node 'requant1'", "output tensor index 99");
  BREAK("bad op", n[N_REQ1].op = (hawq_qop)42, "node 'requant1'", "op is 42");
  BREAK("unnamed node", free(n[N_REQ1].name); n[N_REQ1].name = NULL, "node 2", "no name");
  BREAK("input index", n[N_REQ1].inputs[0] = 999, "node 'requant1'", "tensor index 999");
  BREAK("input from later node", n[N_REQ1].inputs[0] = T_C2, "node 'requant1'",
        "expected an earlier node");
  BREAK("input from itself", n[N_REQ1].inputs[0] = T_Q1, "node 'requant1'",
        "expected an earlier node");
  BREAK("absent input", n[N_ADD].inputs[1] = -1, "node 'add' (QAdd)", "tensor index -1");
  BREAK("no inputs", n[N_REQ1].n_inputs = 0, "node 'requant1'", "0 inputs");
  BREAK("too many inputs", n[N_CAT].n_inputs = 65, "node 'concat'", "65 inputs");
}

static void test_dyadic_rules(void) {
  KEEP("zero dyadic", n[N_REQ1].dyadic[0] = dy(0, 1));
  KEEP("largest dyadic", n[N_REQ1].dyadic[0] = dy(INT32_MAX, 62));
  KEEP("smallest c", n[N_REQ1].dyadic[0] = dy(1 << 30, 1));
  BREAK("m below 2^30", n[N_REQ1].dyadic[0].m = (1 << 30) - 1, "node 'requant1'", "dyadic[0]");
  BREAK("negative m", n[N_REQ1].dyadic[0].m = INT32_MIN, "node 'requant1'", "dyadic[0]");
  BREAK("c 0", n[N_REQ1].dyadic[0].c = 0, "node 'requant1'", "dyadic[0]");
  BREAK("c 63", n[N_REQ1].dyadic[0].c = 63, "node 'requant1'", "dyadic[0]");
  BREAK("zero m, c 2", n[N_REQ1].dyadic[0] = dy(0, 2), "node 'requant1'", "dyadic[0]");
  BREAK("conv dyadic", n[N_CONV1].dyadic[3].c = 99, "node 'conv1' (QConv)", "dyadic[3]");
  BREAK("n_dyadic", n[N_REQ1].n_dyadic = 2, "node 'requant1'", "n_dyadic 2");
  BREAK("no dyadic array", free(n[N_ADD].dyadic);
        n[N_ADD].dyadic = NULL, "node 'add'", "n_dyadic 2 with no array");
  BREAK("residual dyadic", n[N_CONV2].residual_dyadic.c = 0, "node 'conv2'", "residual_dyadic");
}

static void test_input_op(void) {
  BREAK("input reads two", n[N_INPUT].n_inputs = 2, "node 'input' (QInput)",
        "input 1 is tensor index -1");
  BREAK("input reads two valid", n[N_INPUT].n_inputs = 2;
        n[N_INPUT].inputs[1] = T_PIX, "node 'input' (QInput)", "inputs 2 (first 0), expected 1");
  BREAK("input_mul", free(n[N_INPUT].input_mul);
        n[N_INPUT].input_mul = NULL, "node 'input'", "input_mul");
  BREAK("input n_dyadic", n[N_INPUT].n_dyadic = 2, "node 'input'", "n_dyadic 2");
  BREAK("input shape", t[T_X].h = 5, "node 'input'", "input 'pixels' is 4 x 4 x 3");
  /* 255 * 8421504 + 127 = 2^31 - 1 */
  KEEP("input affine at bound", n[N_INPUT].input_mul[1] = 8421504; n[N_INPUT].input_add[1] = 127);
  BREAK("input affine past bound", n[N_INPUT].input_mul[1] = 8421504;
        n[N_INPUT].input_add[1] = 128, "node 'input'", "channel 1");
  KEEP("input affine negative at bound", n[N_INPUT].input_mul[2] = -8421504;
       n[N_INPUT].input_add[2] = -127);
  BREAK("input affine negative past", n[N_INPUT].input_mul[2] = -8421504;
        n[N_INPUT].input_add[2] = -128, "node 'input'", "channel 2");
  BREAK("input add alone", n[N_INPUT].input_add[0] = INT32_MIN, "node 'input'", "channel 0");
}

static void test_conv_rules(void) {
  BREAK("kernel 0", n[N_CONV1].kernel[0] = 0, "node 'conv1' (QConv)", "kernel height 0");
  BREAK("stride 0", n[N_CONV1].stride[1] = 0, "node 'conv1'", "stride width 0");
  BREAK("dilation 0", n[N_CONV1].dilation[0] = 0, "node 'conv1'", "dilation height 0");
  BREAK("negative pad", n[N_CONV1].pad[2] = -1, "node 'conv1'", "pad 2 is -1");
  BREAK("huge pad", n[N_CONV1].pad[3] = (1 << 20) + 1, "node 'conv1'", "pad 3");
  BREAK("huge kernel", n[N_CONV1].kernel[1] = INT_MAX, "node 'conv1'", "kernel width");
  BREAK("groups 0", n[N_CONV1].groups = 0, "node 'conv1'", "groups 0");
  BREAK("groups not dividing C", n[N_CONV1].groups = 2, "node 'conv1'", "groups 2");
  BREAK("groups not dividing K", n[N_CONV1].groups = 3, "node 'conv1'", "groups 3");
  BREAK("output size (stride)", n[N_CONV1].stride[0] = 2, "node 'conv1'", "expected 2 x 4");
  BREAK("output size (pads)", n[N_CONV1].pad[1] = 0, "node 'conv1'", "expected 4 x 3");
  BREAK("output size (dilation)", n[N_CONV1].dilation[1] = 2, "node 'conv1'", "expected 4 x 2");
  BREAK("kernel larger than input", n[N_CONV1].kernel[0] = 7, "node 'conv1'", "expected -1 x 4");
  BREAK("weight_bits 1", n[N_CONV1].weight_bits = 1, "node 'conv1'", "weight_bits 1");
  BREAK("weight_bits 9", n[N_CONV2].weight_bits = 9, "node 'conv2'", "weight_bits 9");
  BREAK("no weights", free(n[N_CONV1].weight);
        n[N_CONV1].weight = NULL, "node 'conv1'", "weight missing");
  BREAK("no bias", free(n[N_CONV1].bias); n[N_CONV1].bias = NULL, "node 'conv1'", "bias missing");
  BREAK("conv n_dyadic", n[N_CONV1].n_dyadic = 3, "node 'conv1'", "n_dyadic 3, expected 4");
  BREAK("3 inputs", n[N_CONV2].n_inputs = 3;
        n[N_CONV2].inputs[2] = T_X, "node 'conv2'", "3 inputs, expected 1 or 2");
  BREAK("residual shape", n[N_CONV2].inputs[1] = T_X, "node 'conv2'", "residual 'x'");
  KEEP("absent residual", n[N_CONV2].inputs[1] = -1);
  KEEP("no residual", n[N_CONV2].n_inputs = 1);
  /* weights: 4-bit packed within +-7, padding nibble 0; 8-bit within +-127; 6-bit +-31 */
  BREAK("4-bit weight -8", set_nibble(&n[N_CONV1], 27, 2, 5, -8), "node 'conv1'",
        "weight 5 of output channel 2 is -8");
  BREAK("padding nibble", set_nibble(&n[N_CONV1], 27, 1, 27, 3), "node 'conv1'",
        "padding nibble is 3");
  BREAK("8-bit weight -128", n[N_CONV2].weight[6] = -128, "node 'conv2'",
        "weight 2 of output channel 1 is -128");
  BREAK("6-bit weight 32", n[N_FC].weight[40] = 32, "node 'fc'",
        "weight 8 of output channel 1 is 32");
  BREAK("6-bit weight -32", n[N_FC].weight[0] = -32, "node 'fc'", "within +-31");
  KEEP("6-bit weight -31", n[N_FC].weight[0] = -31);
  BREAK("2-bit weight 2", n[N_CONV1].weight_bits = 2; set_nibble(&n[N_CONV1], 27, 0, 0, 1);
        set_nibble(&n[N_CONV1], 27, 0, 1, 2), "node 'conv1'", "within +-1 (2 bits)");
}

/* The accumulator bound: fc's x is U8 (max 255), every weight 31 over 32 taps: 252960 + |bias|
 * must stay below 2^31. */
static void test_accumulator_bound(void) {
  const int32_t at = INT32_MAX - 255 * 31 * 32;
  KEEP("bias at the bound", n[N_FC].bias[4] = at);
  KEEP("negative bias at the bound", n[N_FC].bias[4] = -at);
  BREAK("bias one past", n[N_FC].bias[4] = at + 1, "node 'fc' (QConv)",
        "output channel 4: accumulator bound");
  BREAK("negative bias one past", n[N_FC].bias[0] = -at - 1, "node 'fc'", "output channel 0");
  BREAK("bias INT32_MIN", n[N_FC].bias[2] = INT32_MIN, "node 'fc'", "output channel 2");
  /* the bound uses the input's range: with hi 254 the same bias leaves room */
  KEEP("smaller input range", n[N_FC].bias[4] = at + 31 * 32; t[T_CAT].hi = 254);
  BREAK("larger input range", n[N_FC].bias[4] = at; t[T_CAT].lo = -256; t[T_CAT].type = HAWQ_QT_I16;
        n[N_CAT].dyadic[0] = one, "node 'fc'", "max|x| 256");
  /* a weight of 0 anywhere lowers sum|w| by 31 */
  KEEP("one zero weight", n[N_FC].bias[3] = at + 255 * 31; n[N_FC].weight[3 * 32 + 7] = 0);
  BREAK("one zero weight, one more", n[N_FC].bias[3] = at + 255 * 31 + 1;
        n[N_FC].weight[3 * 32 + 7] = 0, "node 'fc'", "output channel 3");
}

static void test_eltwise_rules(void) {
  BREAK("add 1 input", n[N_ADD].n_inputs = 1, "node 'add' (QAdd)", "1 inputs, expected 2");
  BREAK("add shape", n[N_ADD].inputs[1] = T_X, "node 'add'", "input b 'x'");
  BREAK("add n_dyadic", n[N_ADD].n_dyadic = 1, "node 'add'", "n_dyadic 1, expected 2");
  BREAK("requant shape", n[N_REQ1].inputs[0] = T_X, "node 'requant1'", "input 'x'");
  BREAK("requant 2 inputs", n[N_REQ1].n_inputs = 2;
        n[N_REQ1].inputs[1] = T_X, "node 'requant1'", "2 inputs");
  BREAK("concat channels", t[T_CAT].c = 9, "node 'concat' (QConcat)", "expected 8");
  BREAK("concat spatial", n[N_CAT].inputs[1] = T_Q2, "node 'concat'", "input 1 'q2' is 4 x 4");
  BREAK("concat n_dyadic", n[N_CAT].n_dyadic = 1, "node 'concat'", "n_dyadic 1, expected 2");
}

static void test_pool_rules(void) {
  BREAK("maxpool type", t[T_MP].type = HAWQ_QT_U4;
        t[T_MP].hi = 15, "node 'maxpool' (QMaxPool)", "expected the input's u8");
  BREAK("maxpool range", t[T_MP].lo = 1, "node 'maxpool'", "expected the input's u8 [0, 255]");
  BREAK("maxpool channels", t[T_MP].c = 5, "node 'maxpool'", "5 channels, expected 4");
  BREAK("maxpool size", t[T_MP].h = 3, "node 'maxpool'", "output height 3, expected 2");
  BREAK("maxpool kernel 0", n[N_MAX].kernel[1] = 0, "node 'maxpool'", "kernel width 0");
  /* kernel 1 with a top pad of 1: window 0 covers only padding */
  BREAK("window in padding", n[N_MAX].kernel[0] = 1; n[N_MAX].pad[0] = 1;
        t[T_MP].h = 3, "node 'maxpool'", "window 0 along the height has no tap inside");
  /* kernel 2, dilation 5, pads 1: the taps at -1 and 4 jump over the input of height 4 */
  BREAK("taps around the input", n[N_MAX].dilation[0] = 5; n[N_MAX].pad[0] = n[N_MAX].pad[2] = 1;
        t[T_MP].h = 1, "node 'maxpool'", "window 0 along the height has no tap inside");
  /* kernel 3, stride 2 over 4: floor gives 1, ceil_mode 2; avgpool likewise with a pad */
  KEEP("ceil-mode size", n[N_MAX].kernel[0] = 3; n[N_MAX].stride[0] = 2; t[T_MP].h = 2;
       n[N_AVG].kernel[0] = 3; n[N_AVG].stride[0] = 2; n[N_AVG].pad[2] = 1; free(n[N_AVG].dyadic);
       dyadics(&n[N_AVG], 6));
  BREAK("avgpool dilation", n[N_AVG].dilation[0] = 2, "node 'avgpool' (QAvgPool)",
        "dilation 2 x 1, expected 1 x 1");
  BREAK("avgpool n_dyadic", n[N_AVG].n_dyadic = 3, "node 'avgpool'", "n_dyadic 3, expected 4");
  BREAK("avgpool size", t[T_AP].w = 1, "node 'avgpool'", "output width 1");
  /* 2^12 x 2^12 taps of max|x| 255: past 2^31 */
  BREAK("avgpool sum bound", n[N_AVG].kernel[0] = n[N_AVG].kernel[1] = 4096;
        for (int i = 0; i < 4; i++) n[N_AVG].pad[i] = 2046;
        t[T_AP].h = t[T_AP].w = 1, "node 'avgpool'", "window sum bound 16777216 taps");
}

static void test_helpers(void) {
  int32_t lo, hi;
  hawq_qtype_range(HAWQ_QT_I4, &lo, &hi);
  CHECK(lo == -8 && hi == 7, "i4 range");
  hawq_qtype_range(HAWQ_QT_I32, &lo, &hi);
  CHECK(lo == INT32_MIN && hi == INT32_MAX, "i32 range");
  CHECK(hawq_qtype_bits(HAWQ_QT_U4) == 4 && hawq_qtype_bits(HAWQ_QT_I16) == 16, "bits");
  CHECK(hawq_qtype_row_bytes(HAWQ_QT_U4, 7) == 4 && hawq_qtype_row_bytes(HAWQ_QT_I4, 8) == 4 &&
            hawq_qtype_row_bytes(HAWQ_QT_I16, 3) == 6 && hawq_qtype_row_bytes(HAWQ_QT_I32, 3) == 12,
        "row bytes");
  CHECK(strcmp(hawq_qop_name(HAWQ_QOP_CONV), "QConv") == 0, "op name");
  CHECK(strcmp(hawq_qtype_name(HAWQ_QT_I16), "i16") == 0, "type name");
  hawq_qmodel *m = base();
  CHECK(hawq_qtensor_bytes(&m->tensors[T_Q1]) == 4 * 4 * 2, "q1 bytes");
  CHECK(hawq_qnode_weight_bytes(m, &m->nodes[N_CONV1]) == 4 * 14, "conv1 weight bytes");
  CHECK(hawq_qnode_weight_bytes(m, &m->nodes[N_FC]) == 5 * 32, "fc weight bytes");
  CHECK(hawq_qnode_weight_bytes(m, &m->nodes[N_ADD]) == 0, "add weight bytes");
  CHECK(m->tensors[T_Q1].producer == N_REQ1 && m->tensors[T_PIX].producer == -1, "producers");
  CHECK(m->nodes[N_CAT].inputs[2] == -1 && m->nodes[N_CAT].inputs[63] == -1, "unused inputs");
  hawq_qcost c1 = hawq_qmodel_cost(m, N_CONV1), all = hawq_qmodel_cost(m, -1);
  CHECK(c1.macs == 16 * 4 * 27 && c1.bops == c1.macs * 4 * 8 && c1.params == 4 * 27 + 4 &&
            c1.bytes == 4 * 14 + 16,
        "conv1 cost %lld %lld %lld %lld", (long long)c1.macs, (long long)c1.bops,
        (long long)c1.params, (long long)c1.bytes);
  CHECK(all.macs == c1.macs + 16 * 4 * 4 + 5 * 32, "total macs %lld", (long long)all.macs);
  CHECK(hawq_qmodel_cost(m, N_ADD).macs == 0, "add cost");
  /* a file reader calls weight bytes before validating: absurd geometry gives 0, no overflow */
  m->nodes[N_CONV1].kernel[0] = INT_MAX;
  m->nodes[N_CONV1].kernel[1] = INT_MAX;
  CHECK(hawq_qnode_weight_bytes(m, &m->nodes[N_CONV1]) == 0, "absurd weight bytes");
  m->nodes[N_CONV1].kernel[0] = m->nodes[N_CONV1].kernel[1] = 1 << 20;
  m->tensors[T_X].c = (int64_t)1 << 31;
  CHECK(hawq_qnode_weight_bytes(m, &m->nodes[N_CONV1]) == 0, "overflowing weight bytes");
  hawq_qmodel_destroy(m);
  hawq_qmodel_destroy(NULL);
  hawq_error err;
  CHECK(hawq_qmodel_validate(NULL, "x", &err) != HAWQ_OK, "NULL model");
  hawq_qmodel *e = hawq_qmodel_new();
  CHECK(e && e->input == -1 && e->output == -1 && hawq_qmodel_validate(e, NULL, &err) != HAWQ_OK,
        "empty model: %s", err.msg);
  CHECK(hawq_qmodel_add_node(e, HAWQ_QOP_CONCAT, "x", HAWQ_QMAX_INPUTS + 1, NULL, 0) == -1,
        "too many inputs accepted");
  hawq_qmodel_destroy(e);
}

int main(void) {
  test_model_level();
  test_tensors();
  test_graph();
  test_dyadic_rules();
  test_input_op();
  test_conv_rules();
  test_accumulator_bound();
  test_eltwise_rules();
  test_pool_rules();
  test_helpers();
  printf("test_qmodel_validate: %lld broken models rejected\n", (long long)failures_expected);
  return test_report("test_qmodel_validate");
}
