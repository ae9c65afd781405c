/* hawq train: trains a network hawq builds (--arch) or fine-tunes any imported model (--init)
 * on a labelled image dataset, and writes it as ONNX.
 *
 * Checkpoints are ONNX files too: the model as it stands after an epoch, with the optimizer's
 * state as extra initializers ("hawq.optim.<buffer>.<param>") and the training settings and
 * position in metadata ("hawq.train.state", JSON). --resume continues from one exactly: the
 * loader's shuffling and augmentation depend only on (seed, epoch, image), so a resumed run
 * computes what the uninterrupted run would have. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "core/graph.h"
#include "core/preprocess.h"
#include "core/status.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "float/train.h"
#include "onnx/export.h"

static const char help[] =
    "usage: hawq train (--arch A | --init MODEL.onnx | --resume CKPT.onnx) --data D -o OUT.onnx\n"
    "                  [options]\n\n"
    "Trains a network and writes it as ONNX (BatchNormalization kept, input preprocessing in\n"
    "metadata), loadable by hawq and by ONNX Runtime.\n\n"
    "model:\n"
    "  --arch A            build and train from scratch: resnet20 (and any resnet<6n+2>: resnet8,\n"
    "                      resnet14, resnet32, ...: CIFAR-style, 16/32/64 channels), resnet18,\n"
    "                      resnet50 (torchvision-style; inputs under 112 pixels get a 3x3 stem\n"
    "                      without max pooling). Input size and classes come from the data.\n"
    "  --init MODEL        fine-tune an imported ONNX model (its Conv, Gemm and\n"
    "                      BatchNormalization initializers are trained)\n"
    "  --resume CKPT       continue from a checkpoint written by --checkpoint; the training\n"
    "                      settings are the checkpoint's (only --data, --threads, -o,\n"
    "                      --checkpoint, --stop-after, --eval-limit and --json may be given)\n"
    "data:\n"
    "  --data D            'fashion-mnist' or a directory of IDX files (see 'hawq eval --help')\n"
    "  --limit N           train on the first N training images only\n"
    "  --eval-limit N      evaluate on the first N test images after each epoch (default all;\n"
    "                      0 = no evaluation)\n"
    "  --crop-pad P        random crop after zero padding by P pixels (default 2; 0 = none)\n"
    "  --no-flip           no random horizontal flips\n"
    "  --mean M[,M..]      input normalisation; for --arch the default is measured on the\n"
    "  --std S[,S..]       training images, for --init it is the model's\n"
    "optimisation:\n"
    "  --epochs E          passes over the training data (default 15)\n"
    "  --batch B           images per step (default 128)\n"
    "  --optimizer O       sgd (default: momentum 0.9, Nesterov) or adamw\n"
    "  --lr LR             peak learning rate (default 0.1 for sgd, 0.001 for adamw)\n"
    "  --final-lr LR       cosine schedule's last value (default 0)\n"
    "  --schedule S        cosine (default), step or constant\n"
    "  --warmup-epochs W   linear warm-up from lr/100 (default 1; fractions allowed)\n"
    "  --step-epochs N     step schedule: multiply by --gamma (default 0.1) every N epochs\n"
    "  --momentum M        SGD momentum (default 0.9)\n"
    "  --no-nesterov       plain momentum instead of Nesterov's\n"
    "  --wd WD             weight decay on conv and fully connected weights (default 5e-4 for\n"
    "                      sgd, 0.05 for adamw)\n"
    "  --clip-grad N       clip the global gradient norm to N\n"
    "  --label-smoothing S (default 0)\n"
    "  --seed S            initialisation, shuffling and augmentation (default 1)\n"
    "run:\n"
    "  --threads T         worker threads (default: all cores)\n"
    "  --checkpoint FILE   write a resumable checkpoint after every epoch\n"
    "  --stop-after E      stop after epoch E (of --epochs; the schedule is unchanged), e.g. to\n"
    "                      continue later with --resume\n"
    "  -o, --output FILE   the trained model (written when training ends)\n"
    "  --json              print the summary as JSON\n";

/* Every setting that shapes the result: stored in checkpoints, restored by --resume. */
typedef struct train_config {
  const char *arch; /* NULL when the model came from --init */
  long long epochs, batch, seed, limit, crop_pad;
  bool flip, nesterov;
  const char *optimizer, *schedule;
  double lr, final_lr, warmup_epochs, step_epochs, gamma, momentum, wd, clip, smoothing;
} train_config;

#define UNSET (-1.0)

static cJSON *config_to_json(const train_config *c, long long epochs_done, long long steps) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "version", 1);
  if (c->arch) cJSON_AddStringToObject(o, "arch", c->arch);
  cJSON_AddNumberToObject(o, "epochs_done", (double)epochs_done);
  cJSON_AddNumberToObject(o, "steps", (double)steps);
  cJSON_AddNumberToObject(o, "epochs", (double)c->epochs);
  cJSON_AddNumberToObject(o, "batch", (double)c->batch);
  cJSON_AddNumberToObject(o, "seed", (double)c->seed);
  cJSON_AddNumberToObject(o, "limit", (double)c->limit);
  cJSON_AddNumberToObject(o, "crop_pad", (double)c->crop_pad);
  cJSON_AddBoolToObject(o, "flip", c->flip);
  cJSON_AddBoolToObject(o, "nesterov", c->nesterov);
  cJSON_AddStringToObject(o, "optimizer", c->optimizer);
  cJSON_AddStringToObject(o, "schedule", c->schedule);
  const struct {
    const char *k;
    double v;
  } nums[] = {{"lr", c->lr},
              {"final_lr", c->final_lr},
              {"warmup_epochs", c->warmup_epochs},
              {"step_epochs", c->step_epochs},
              {"gamma", c->gamma},
              {"momentum", c->momentum},
              {"wd", c->wd},
              {"clip", c->clip},
              {"label_smoothing", c->smoothing}};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    /* 17 significant digits: the value reads back bit for bit */
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", nums[i].v);
    cJSON_AddRawToObject(o, nums[i].k, buf);
  }
  return o;
}

/* Reads a checkpoint's state; strings point into `o` (kept alive by the caller). */
static bool config_from_json(const cJSON *o, train_config *c, long long *epochs_done,
                             long long *steps) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "version");
  if (!cJSON_IsNumber(v) || v->valuedouble != 1) return false;
  const cJSON *arch = cJSON_GetObjectItemCaseSensitive(o, "arch");
  c->arch = cJSON_IsString(arch) ? arch->valuestring : NULL;
  struct {
    const char *k;
    long long *p;
  } ints[] = {{"epochs_done", epochs_done}, {"steps", steps},   {"epochs", &c->epochs},
              {"batch", &c->batch},         {"seed", &c->seed}, {"limit", &c->limit},
              {"crop_pad", &c->crop_pad}};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    v = cJSON_GetObjectItemCaseSensitive(o, ints[i].k);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15) return false;
    *ints[i].p = (long long)v->valuedouble;
  }
  struct {
    const char *k;
    double *p;
  } nums[] = {{"lr", &c->lr},
              {"final_lr", &c->final_lr},
              {"warmup_epochs", &c->warmup_epochs},
              {"step_epochs", &c->step_epochs},
              {"gamma", &c->gamma},
              {"momentum", &c->momentum},
              {"wd", &c->wd},
              {"clip", &c->clip},
              {"label_smoothing", &c->smoothing}};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    v = cJSON_GetObjectItemCaseSensitive(o, nums[i].k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return false;
    *nums[i].p = v->valuedouble;
  }
  const cJSON *flip = cJSON_GetObjectItemCaseSensitive(o, "flip");
  const cJSON *nest = cJSON_GetObjectItemCaseSensitive(o, "nesterov");
  const cJSON *opt = cJSON_GetObjectItemCaseSensitive(o, "optimizer");
  const cJSON *sch = cJSON_GetObjectItemCaseSensitive(o, "schedule");
  if (!cJSON_IsBool(flip) || !cJSON_IsBool(nest) || !cJSON_IsString(opt) || !cJSON_IsString(sch)) {
    return false;
  }
  c->flip = cJSON_IsTrue(flip);
  c->nesterov = cJSON_IsTrue(nest);
  c->optimizer = opt->valuestring;
  c->schedule = sch->valuestring;
  return c->batch >= 1 && c->epochs >= 1 && *epochs_done <= c->epochs;
}

static const char *meta_value(const hawq_graph *g, const char *key) {
  for (int i = 0; i < g->n_meta; i++) {
    if (!strcmp(g->meta_key[i], key)) return g->meta_value[i];
  }
  return NULL;
}

/* Drops a metadata entry (a checkpoint's state must not follow the model into its output). */
static void drop_meta(hawq_graph *g, const char *key) {
  for (int i = 0; i < g->n_meta; i++) {
    if (strcmp(g->meta_key[i], key)) continue;
    free(g->meta_key[i]);
    free(g->meta_value[i]);
    for (int j = i + 1; j < g->n_meta; j++) {
      g->meta_key[j - 1] = g->meta_key[j];
      g->meta_value[j - 1] = g->meta_value[j];
    }
    g->n_meta--;
    return;
  }
}

/* Per-channel mean and std of the first n training images, pixels scaled to [0, 1]. */
static void measure_mean_std(const hawq_dataset *ds, int64_t n, hawq_preprocess *pp) {
  int C = ds->channels;
  double sum[HAWQ_MAX_CHANNELS] = {0}, sq[HAWQ_MAX_CHANNELS] = {0};
  int64_t pixels = n * ds->height * ds->width;
  for (int64_t i = 0; i < pixels; i++) {
    for (int c = 0; c < C; c++) {
      double v = ds->images[i * C + c] / 255.0;
      sum[c] += v;
      sq[c] += v * v;
    }
  }
  *pp = hawq_preprocess_default();
  pp->channels = C;
  for (int c = 0; c < C; c++) {
    double mean = sum[c] / (double)pixels, var = sq[c] / (double)pixels - mean * mean;
    /* four decimals, as written to metadata, so the run and the exported model agree */
    pp->mean[c] = (float)(round(mean * 1e4) / 1e4);
    pp->std[c] = (float)(round(sqrt(var > 1e-8 ? var : 1e-8) * 1e4) / 1e4);
    if (pp->std[c] <= 0) pp->std[c] = 1e-4f;
  }
  pp->has_metadata = true;
}

/* Top-1 accuracy of g on the first n images of ds with the inference engine. */
static hawq_status evaluate(const hawq_graph *g, const hawq_dataset *ds, int64_t n,
                            const hawq_preprocess *pp, int threads, int64_t *correct,
                            hawq_error *err) {
  int batch = n < 250 ? (int)n : 250;
  hawq_float_plan *plan = NULL;
  hawq_status st = hawq_float_plan_create(
      g, &(hawq_float_plan_options){.batch = batch, .threads = threads}, &plan, err);
  if (st) return st;
  int64_t per = (int64_t)ds->height * ds->width * ds->channels;
  float *x = calloc((size_t)(batch * per), sizeof(float));
  if (!x) {
    hawq_float_plan_destroy(plan);
    return hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  }
  int64_t classes = (int64_t)hawq_float_plan_output_size(plan, 0) / batch;
  *correct = 0;
  for (int64_t first = 0; first < n && !st; first += batch) {
    int64_t m = n - first < batch ? n - first : batch;
    hawq_dataset_fill_batch(ds, first, m, pp, x);
    st = hawq_float_plan_run(plan, (const float *const[]){x}, err);
    const float *z = hawq_float_plan_output(plan, 0);
    for (int64_t i = 0; i < m && !st; i++) {
      int64_t best = 0;
      for (int64_t c = 1; c < classes; c++)
        if (z[i * classes + c] > z[i * classes + best]) best = c;
      *correct += best == ds->labels[first + i];
    }
  }
  free(x);
  hawq_float_plan_destroy(plan);
  return st;
}

/* Writes the model (with `state`, optimizer buffers and train metadata when a checkpoint). */
static hawq_status save_model(const hawq_graph *g, const char *path, hawq_train_plan *tp,
                              hawq_optim *opt, const char *state_key, const char *state_json,
                              hawq_error *err) {
  int n_params = opt ? hawq_train_plan_num_params(tp) : 0;
  int n_buf = opt ? hawq_optim_num_buffers(opt) : 0;
  size_t n_extra = (size_t)(n_params * n_buf);
  struct hawq_onnx_extra_tensor *extra = calloc(n_extra + 1, sizeof *extra);
  char **names = calloc(n_extra + 1, sizeof *names);
  int64_t *dims = calloc(n_extra + 1, sizeof *dims);
  hawq_status st = HAWQ_OK;
  if (!extra || !names || !dims) {
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
    goto done;
  }
  for (int i = 0; i < n_params; i++) {
    const hawq_param *p = hawq_train_plan_param(tp, i);
    for (int b = 0; b < n_buf; b++) {
      size_t k = (size_t)(i * n_buf + b);
      const char *pname = g->tensors[p->tensor].name;
      size_t len = strlen(pname) + 32;
      names[k] = malloc(len);
      if (!names[k]) {
        st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
        goto done;
      }
      snprintf(names[k], len, "hawq.optim.%d.%s", b, pname);
      dims[k] = p->numel;
      extra[k] =
          (struct hawq_onnx_extra_tensor){names[k], 1, &dims[k], hawq_optim_buffer(opt, i, b)};
    }
  }
  const char *keys[1] = {state_key}, *values[1] = {state_json};
  hawq_onnx_write_options wo = {.n_meta = state_key ? 1 : 0,
                                .meta_keys = keys,
                                .meta_values = values,
                                .n_extra = n_extra,
                                .extra = extra};
  st = hawq_onnx_write_graph(g, path, &wo, err);
done:
  for (size_t k = 0; names && k < n_extra; k++) free(names[k]);
  free(names);
  free(extra);
  free(dims);
  return st;
}

/* Restores the optimizer buffers saved by save_model. */
static hawq_status restore_optimizer(const char *path, const hawq_graph *g, hawq_train_plan *tp,
                                     hawq_optim *opt, hawq_error *err) {
  hawq_onnx_extra_set *set = NULL;
  hawq_status st = hawq_onnx_read_extra(path, "hawq.optim.", &set, err);
  if (st) return st;
  int n_buf = hawq_optim_num_buffers(opt);
  for (int i = 0; i < hawq_train_plan_num_params(tp) && !st; i++) {
    const hawq_param *p = hawq_train_plan_param(tp, i);
    for (int b = 0; b < n_buf && !st; b++) {
      char name[600];
      snprintf(name, sizeof name, "hawq.optim.%d.%s", b, g->tensors[p->tensor].name);
      const hawq_onnx_extra_item *it = NULL;
      for (size_t k = 0; k < set->n; k++)
        if (!strcmp(set->items[k].name, name)) it = &set->items[k];
      if (!it || it->count != p->numel) {
        st = hawq_fail(err, HAWQ_ERR_PARSE,
                       "%s: optimizer state '%s' is missing or has the wrong size (expected %lld "
                       "values)",
                       path, name, (long long)p->numel);
        break;
      }
      memcpy(hawq_optim_buffer(opt, i, b), it->data, (size_t)p->numel * sizeof(float));
    }
  }
  hawq_onnx_extra_set_free(set);
  return st;
}

static void format_duration(double s, char *buf, size_t size) {
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

int cmd_train(int argc, char **argv) {
  const char *arch = NULL, *init = NULL, *resume = NULL, *data = NULL, *output = NULL;
  const char *checkpoint = NULL, *mean = NULL, *std = NULL;
  const char *optimizer = NULL, *schedule = NULL;
  long long epochs = -1, batch = -1, seed = -1, limit = -1, crop_pad = -1;
  long long eval_limit = -1, threads = cli_default_threads(), stop_after = 0;
  bool no_flip = false, no_nesterov = false, json = false;
  double lr = UNSET, final_lr = UNSET, warmup = UNSET, step_epochs = UNSET, gamma = UNSET;
  double momentum = UNSET, wd = UNSET, clip = UNSET, smoothing = UNSET;
  const cli_opt opts[] = {
      {"--arch", CLI_STRING, &arch, 0, 0},
      {"--init", CLI_STRING, &init, 0, 0},
      {"--resume", CLI_STRING, &resume, 0, 0},
      {"--data", CLI_STRING, &data, 0, 0},
      {"-o", CLI_STRING, &output, 0, 0},
      {"--output", CLI_STRING, &output, 0, 0},
      {"--checkpoint", CLI_STRING, &checkpoint, 0, 0},
      {"--mean", CLI_STRING, &mean, 0, 0},
      {"--std", CLI_STRING, &std, 0, 0},
      {"--optimizer", CLI_STRING, &optimizer, 0, 0},
      {"--schedule", CLI_STRING, &schedule, 0, 0},
      {"--epochs", CLI_INT, &epochs, 1, 100000},
      {"--batch", CLI_INT, &batch, 1, 65536},
      {"--seed", CLI_INT, &seed, 0, (long long)1 << 53},
      {"--limit", CLI_INT, &limit, 1, (long long)1 << 40},
      {"--eval-limit", CLI_INT, &eval_limit, 0, (long long)1 << 40},
      {"--crop-pad", CLI_INT, &crop_pad, 0, 64},
      {"--threads", CLI_INT, &threads, 1, 1024},
      {"--stop-after", CLI_INT, &stop_after, 1, 100000},
      {"--no-flip", CLI_FLAG, &no_flip, 0, 0},
      {"--no-nesterov", CLI_FLAG, &no_nesterov, 0, 0},
      {"--json", CLI_FLAG, &json, 0, 0},
      {"--lr", CLI_DOUBLE, &lr, 1e-12, 100},
      {"--final-lr", CLI_DOUBLE, &final_lr, 0, 100},
      {"--warmup-epochs", CLI_DOUBLE, &warmup, 0, 100000},
      {"--step-epochs", CLI_DOUBLE, &step_epochs, 1e-6, 100000},
      {"--gamma", CLI_DOUBLE, &gamma, 1e-9, 1},
      {"--momentum", CLI_DOUBLE, &momentum, 0, 0.9999},
      {"--wd", CLI_DOUBLE, &wd, 0, 1},
      {"--clip-grad", CLI_DOUBLE, &clip, 1e-9, 1e9},
      {"--label-smoothing", CLI_DOUBLE, &smoothing, 0, 0.9999},
  };
  const char *pos[1];
  int n_pos;
  int rc = cli_parse("train", argc, argv, opts, sizeof opts / sizeof opts[0], pos, 0, &n_pos);
  if (rc < 0) {
    fputs(help, stdout);
    return CLI_OK;
  }
  if (rc) return rc;
  if (!!arch + !!init + !!resume != 1) {
    return cli_usage_error("train", "give exactly one of --arch, --init and --resume");
  }
  if (!data) return cli_usage_error("train", "--data is required");
  if (!output) return cli_usage_error("train", "-o OUT.onnx is required");
  if (resume) {
    const char *given = epochs >= 0            ? "--epochs"
                        : batch >= 0           ? "--batch"
                        : seed >= 0            ? "--seed"
                        : limit >= 0           ? "--limit"
                        : crop_pad >= 0        ? "--crop-pad"
                        : no_flip              ? "--no-flip"
                        : no_nesterov          ? "--no-nesterov"
                        : optimizer            ? "--optimizer"
                        : schedule             ? "--schedule"
                        : mean || std          ? "--mean/--std"
                        : lr != UNSET          ? "--lr"
                        : final_lr != UNSET    ? "--final-lr"
                        : warmup != UNSET      ? "--warmup-epochs"
                        : step_epochs != UNSET ? "--step-epochs"
                        : gamma != UNSET       ? "--gamma"
                        : momentum != UNSET    ? "--momentum"
                        : wd != UNSET          ? "--wd"
                        : clip != UNSET        ? "--clip-grad"
                        : smoothing != UNSET   ? "--label-smoothing"
                                               : NULL;
    if (given) {
      return cli_usage_error("train",
                             "%s cannot be combined with --resume (the checkpoint's "
                             "settings are used)",
                             given);
    }
  }
  train_config cfg = {
      .arch = arch,
      .epochs = epochs >= 0 ? epochs : 15,
      .batch = batch >= 0 ? batch : 128,
      .seed = seed >= 0 ? seed : 1,
      .limit = limit >= 0 ? limit : 0,
      .crop_pad = crop_pad >= 0 ? crop_pad : 2,
      .flip = !no_flip,
      .nesterov = !no_nesterov,
      .optimizer = optimizer ? optimizer : "sgd",
      .schedule = schedule ? schedule : "cosine",
      .final_lr = final_lr != UNSET ? final_lr : 0,
      .warmup_epochs = warmup != UNSET ? warmup : 1,
      .step_epochs = step_epochs != UNSET ? step_epochs : 0,
      .gamma = gamma != UNSET ? gamma : 0.1,
      .momentum = momentum != UNSET ? momentum : 0.9,
      .clip = clip != UNSET ? clip : 0,
      .smoothing = smoothing != UNSET ? smoothing : 0,
  };
  bool adamw = !strcmp(cfg.optimizer, "adamw");
  cfg.lr = lr != UNSET ? lr : adamw ? 1e-3 : 0.1;
  cfg.wd = wd != UNSET ? wd : adamw ? 0.05 : 5e-4;

  hawq_error err;
  hawq_graph *g = NULL;
  hawq_dataset *train = NULL, *test = NULL;
  hawq_train_plan *tp = NULL;
  hawq_optim *opt = NULL;
  hawq_loader *loader = NULL;
  cJSON *state = NULL;
  long long epochs_done = 0, steps_done = 0;
  rc = CLI_OK;
  if (hawq_dataset_load(data, "train", &train, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  if (resume || init) {
    if (hawq_graph_load_onnx(resume ? resume : init, NULL, &g, &err)) {
      rc = cli_report(&err);
      goto done;
    }
  }
  if (resume) {
    const char *s = meta_value(g, "hawq.train.state");
    state = s ? cJSON_Parse(s) : NULL;
    if (!state || !config_from_json(state, &cfg, &epochs_done, &steps_done)) {
      fprintf(stderr,
              "hawq: %s: metadata 'hawq.train.state' is %s; expected a checkpoint written by "
              "'hawq train --checkpoint'\n",
              resume, s ? "not a valid training state" : "missing");
      rc = CLI_BAD_INPUT;
      goto done;
    }
    adamw = !strcmp(cfg.optimizer, "adamw");
  }
  if (g) drop_meta(g, "hawq.train.state");
  if (strcmp(cfg.optimizer, "sgd") && !adamw) {
    rc = cli_usage_error("train", "--optimizer must be sgd or adamw, got '%s'", cfg.optimizer);
    goto done;
  }
  hawq_schedule_kind sk = !strcmp(cfg.schedule, "cosine")     ? HAWQ_SCHEDULE_COSINE
                          : !strcmp(cfg.schedule, "step")     ? HAWQ_SCHEDULE_STEP
                          : !strcmp(cfg.schedule, "constant") ? HAWQ_SCHEDULE_CONSTANT
                                                              : (hawq_schedule_kind)-1;
  if ((int)sk < 0) {
    rc = cli_usage_error("train", "--schedule must be cosine, step or constant, got '%s'",
                         cfg.schedule);
    goto done;
  }
  if (sk == HAWQ_SCHEDULE_STEP && cfg.step_epochs <= 0) {
    rc = cli_usage_error("train", "--schedule step needs --step-epochs");
    goto done;
  }
  int64_t n_train = cfg.limit > 0 && cfg.limit < train->count ? cfg.limit : train->count;
  if (arch) {
    hawq_arch_options ao = {.name = arch,
                            .channels = train->channels,
                            .height = train->height,
                            .width = train->width,
                            .classes = train->num_classes,
                            .seed = (uint64_t)cfg.seed};
    if (hawq_arch_build(&ao, &g, &err)) {
      rc = cli_report(&err);
      goto done;
    }
    measure_mean_std(train, n_train, &g->preprocess);
  }
  if (hawq_preprocess_override(&g->preprocess, mean, std, NULL, &err) ||
      hawq_preprocess_check(&g->preprocess, train->channels, "preprocessing", &err)) {
    rc = cli_report(&err);
    goto done;
  }
  g->preprocess.has_metadata = true;
  const char *model_name = resume ? resume : init ? init : arch;
  const hawq_tensor *in = g->n_inputs == 1 ? &g->tensors[g->inputs[0]] : NULL;
  if (!in || in->rank != 4 || in->dims[1] != train->channels || in->dims[2] != train->height ||
      in->dims[3] != train->width) {
    fprintf(stderr, "hawq: %s: expects an input of one %dx%dx%d image batch (CxHxW) for %s\n",
            model_name, train->channels, train->height, train->width, train->source);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  if (cfg.batch > n_train) cfg.batch = n_train;
  if (hawq_train_plan_create(
          g, &(hawq_train_options){.batch = (int)cfg.batch, .threads = (int)threads}, &tp, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  int64_t classes = 0;
  hawq_train_plan_logits(tp, &classes);
  if (classes < train->num_classes) {
    fprintf(stderr, "hawq: %s: has %lld classes, the data has labels up to %d\n", model_name,
            (long long)classes, train->num_classes - 1);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  hawq_optim_options oo = {.kind = adamw ? HAWQ_OPTIM_ADAMW : HAWQ_OPTIM_SGD,
                           .momentum = (float)cfg.momentum,
                           .nesterov = cfg.nesterov,
                           .weight_decay = (float)cfg.wd,
                           .clip_norm = (float)cfg.clip};
  hawq_loader_options lo = {.ds = train,
                            .count = n_train,
                            .batch = (int)cfg.batch,
                            .shuffle = true,
                            .drop_last = true,
                            .crop_pad = (int)cfg.crop_pad,
                            .flip = cfg.flip,
                            .seed = (uint64_t)cfg.seed,
                            .pp = g->preprocess};
  if (hawq_optim_create(&oo, tp, &opt, &err) || hawq_loader_create(&lo, &loader, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  if (resume) {
    if (restore_optimizer(resume, g, tp, opt, &err)) {
      rc = cli_report(&err);
      goto done;
    }
    hawq_optim_set_steps(opt, steps_done);
  }
  int64_t per_epoch = hawq_loader_batches(loader);
  hawq_schedule sched = {.kind = sk,
                         .lr = (float)cfg.lr,
                         .final_lr = (float)cfg.final_lr,
                         .warmup = (int64_t)(cfg.warmup_epochs * (double)per_epoch),
                         .total = cfg.epochs * per_epoch,
                         .step_every = (int64_t)(cfg.step_epochs * (double)per_epoch),
                         .gamma = (float)cfg.gamma};
  if (eval_limit < 0 || eval_limit > 0) {
    if (hawq_dataset_load(data, "test", &test, &err)) {
      rc = cli_report(&err);
      goto done;
    }
  }
  int64_t n_test = !test                                        ? 0
                   : eval_limit > 0 && eval_limit < test->count ? eval_limit
                                                                : test->count;
  int64_t params = 0;
  for (int i = 0; i < hawq_train_plan_num_params(tp); i++)
    params += hawq_train_plan_param(tp, i)->numel;
  char si[32];
  fprintf(stderr,
          "hawq train: %s, %s trainable parameters; %lld images x %lld epochs, batch %lld, %s "
          "lr %g, %d threads\n",
          model_name, cli_si((double)params, si, sizeof si), (long long)n_train,
          (long long)cfg.epochs, (long long)cfg.batch, cfg.optimizer, cfg.lr, (int)threads);

  double train_seconds = 0, last_loss = 0, last_acc = 0, test_acc = -1;
  int64_t step = steps_done;
  long long last_epoch = stop_after && stop_after < cfg.epochs ? stop_after : cfg.epochs;
  for (long long epoch = epochs_done; epoch < last_epoch; epoch++) {
    hawq_loader_start_epoch(loader, epoch);
    char label[48];
    snprintf(label, sizeof label, "epoch %lld/%lld", epoch + 1, (long long)cfg.epochs);
    cli_progress prog;
    cli_progress_start(&prog, label, per_epoch);
    double t0 = cli_now(), loss_sum = 0;
    int64_t seen = 0, hits = 0;
    const float *x;
    const int32_t *y;
    int n;
    for (int64_t b = 0; hawq_loader_next(loader, &x, &y, &n); b++, step++) {
      int64_t correct = 0;
      if (hawq_train_plan_forward(tp, x, true, &err)) {
        rc = cli_report(&err);
        goto done;
      }
      double loss = hawq_train_plan_loss(tp, y, (float)cfg.smoothing, &correct);
      if (!isfinite(loss)) {
        cli_progress_finish(&prog);
        fprintf(stderr,
                "hawq: training diverged: the loss is %g at epoch %lld step %lld; try a "
                "lower --lr or --clip-grad\n",
                loss, epoch + 1, (long long)b + 1);
        rc = CLI_BAD_INPUT;
        goto done;
      }
      hawq_train_plan_zero_grad(tp);
      if (hawq_train_plan_backward(tp, &err)) {
        rc = cli_report(&err);
        goto done;
      }
      hawq_optim_step(opt, tp, hawq_schedule_lr(&sched, step));
      loss_sum += loss * n;
      seen += n;
      hits += correct;
      char extra[96];
      snprintf(extra, sizeof extra, "loss %.4f acc %.2f%% %.0f img/s", loss_sum / (double)seen,
               100.0 * (double)hits / (double)seen, (double)seen / (cli_now() - t0));
      cli_progress_update(&prog, b + 1, extra);
    }
    cli_progress_finish(&prog);
    double secs = cli_now() - t0;
    train_seconds += secs;
    last_loss = loss_sum / (double)seen;
    last_acc = 100.0 * (double)hits / (double)seen;
    int64_t test_hits = 0;
    if (n_test) {
      if (evaluate(g, test, n_test, &g->preprocess, (int)threads, &test_hits, &err)) {
        rc = cli_report(&err);
        goto done;
      }
      test_acc = 100.0 * (double)test_hits / (double)n_test;
    }
    char eta[32];
    format_duration(
        train_seconds / (double)(epoch + 1 - epochs_done) * (double)(cfg.epochs - epoch - 1), eta,
        sizeof eta);
    fprintf(stderr, "epoch %lld/%lld  loss %.4f  train %.2f%%", epoch + 1, (long long)cfg.epochs,
            last_loss, last_acc);
    if (n_test) fprintf(stderr, "  test %.2f%%", test_acc);
    fprintf(stderr, "  lr %.4g  %.0f img/s  %.0f s  ETA %s\n",
            hawq_schedule_lr(&sched, step > 0 ? step - 1 : 0), (double)seen / secs, secs, eta);
    if (checkpoint) {
      cJSON *st = config_to_json(&cfg, epoch + 1, step);
      char *s = st ? cJSON_PrintUnformatted(st) : NULL;
      hawq_status wst = s ? save_model(g, checkpoint, tp, opt, "hawq.train.state", s, &err)
                          : hawq_fail(&err, HAWQ_ERR_NO_MEMORY, "out of memory");
      cJSON_free(s);
      cJSON_Delete(st);
      if (wst) {
        rc = cli_report(&err);
        goto done;
      }
    }
  }
  {
    cJSON *summary = config_to_json(&cfg, last_epoch, step);
    if (n_test) {
      cJSON_AddNumberToObject(summary, "test_top1", test_acc);
      cJSON_AddNumberToObject(summary, "test_images", (double)n_test);
    }
    if (last_epoch == cfg.epochs) cJSON_DeleteItemFromObject(summary, "epochs_done");
    cJSON_DeleteItemFromObject(summary, "steps");
    char *s = cJSON_PrintUnformatted(summary);
    hawq_status wst = s ? save_model(g, output, tp, NULL, "hawq.train.summary", s, &err)
                        : hawq_fail(&err, HAWQ_ERR_NO_MEMORY, "out of memory");
    cJSON_free(s);
    if (wst) {
      cJSON_Delete(summary);
      rc = cli_report(&err);
      goto done;
    }
    if (json) {
      cJSON_AddStringToObject(summary, "output", output);
      cJSON_AddNumberToObject(summary, "parameters", (double)params);
      cJSON_AddNumberToObject(summary, "train_loss", last_loss);
      cJSON_AddNumberToObject(summary, "train_top1", last_acc);
      cJSON_AddNumberToObject(summary, "train_seconds", train_seconds);
      cJSON_AddNumberToObject(summary, "threads", (double)threads);
      char *p = cJSON_Print(summary);
      if (p) puts(p);
      cJSON_free(p);
    } else {
      printf("wrote %s: %s parameters", output, cli_si((double)params, si, sizeof si));
      if (n_test) printf(", test top-1 %.2f%% (%lld images)", test_acc, (long long)n_test);
      printf(", %.0f s of training\n", train_seconds);
    }
    cJSON_Delete(summary);
  }
done:
  cJSON_Delete(state);
  hawq_loader_destroy(loader);
  hawq_optim_destroy(opt);
  hawq_train_plan_destroy(tp);
  hawq_dataset_destroy(train);
  hawq_dataset_destroy(test);
  hawq_graph_destroy(g);
  return rc;
}
