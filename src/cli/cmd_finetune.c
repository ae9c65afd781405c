/* hawq finetune MODEL --data D --bits B -o model.hqm: quantization-aware fine-tuning
 * (quant/qat.h), then lowering, then the accuracy of the fake-quant model and of the integer
 * model on the test split, side by side. */
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
#include "onnx/export.h"
#include "quant/calib.h"
#include "quant/lower.h"
#include "quant/qat.h"
#include "quant/qmodel.h"

static const char help[] =
    "usage: hawq finetune MODEL.onnx --data D --bits B -o MODEL.hqm [options]\n\n"
    "Quantization-aware fine-tuning: trains the model with fake quantization where the integer\n"
    "program quantizes (per-channel weights after BN folding, activations at the widths and\n"
    "scales lowering gives them), straight-through gradients, activation ranges calibrated and\n"
    "then followed by a moving average; then lowers it to an integer-only .hqm and reports the\n"
    "test accuracy of the fake-quant model and of the integer model.\n\n"
    "  --data D             'fashion-mnist' or a directory of IDX files (see hawq eval)\n"
    "  --bits B             8, 4, wXaY or a JSON bit configuration (hawq calibrate, hawq\n"
    "                       allocate -o)\n"
    "  -o FILE              the integer model to write (.hqm)\n"
    "training:\n"
    "  --epochs E           passes over the training data (default 1; fractions allowed)\n"
    "  --steps N            optimisation steps instead of --epochs\n"
    "  --batch B            images per step (default 128)\n"
    "  --optimizer O        sgd (default: momentum 0.9, Nesterov) or adamw\n"
    "  --lr LR              peak learning rate (default 0.002 for sgd, 1e-5 for adamw)\n"
    "  --schedule S         cosine (default, to 0) or constant\n"
    "  --wd WD              weight decay on conv and FC weights (default 1e-4)\n"
    "  --limit N            train on the first N training images only\n"
    "  --crop-pad P         random crop after zero padding by P pixels (default 2; 0: none)\n"
    "  --no-flip            no random horizontal flips\n"
    "  --seed S             shuffling and augmentation (default 1)\n"
    "quantization:\n"
    "  --bn-freeze N        steps with BatchNormalization on batch statistics before it is\n"
    "                       folded with its running statistics, frozen (default 0: at once)\n"
    "  --act-freeze N       steps that update the activation ranges; then they stay fixed\n"
    "                       (default: the first half of the steps; -1: all)\n"
    "  --act-momentum M     the ranges' moving average (default 0.99)\n"
    "  --calib-images N     images that calibrate the initial ranges (default 1024)\n"
    "  --percentile P       calibrate with the P-th percentile instead of the max\n"
    "distillation from the fp32 model:\n"
    "  --distill A          loss = (1 - A) cross-entropy + A T^2 KL(teacher || student)\n"
    "                       (default 0: off)\n"
    "  --temperature T      the distillation temperature (default 4)\n"
    "output:\n"
    "  --eval-limit N       evaluate on the first N test images (default all; 0: none)\n"
    "  --save-float FILE    also write the fine-tuned float model (BN folded) as ONNX\n"
    "  --threads T          worker threads (default: all cores)\n"
    "  --mean M, --std S    override the model's preprocessing (see hawq eval)\n"
    "  --json               print the summary as JSON\n";

typedef struct accuracy {
  int64_t images, fake_correct, int_correct, agree;
} accuracy;

/* The fake-quant model and the integer model on the first n test images, and how often their
 * predictions agree. */
static hawq_status evaluate(hawq_qat *q, const hawq_qmodel *qm, const hawq_dataset *ds, int64_t n,
                            const hawq_preprocess *pp, int batch, int threads, accuracy *acc,
                            hawq_error *err) {
  memset(acc, 0, sizeof *acc);
  acc->images = n;
  if (n == 0) return HAWQ_OK;
  const int64_t per = (int64_t)ds->height * ds->width * ds->channels;
  float *x = hawq_alloc_floats((size_t)(batch * per));
  int32_t *fake = malloc((size_t)batch * sizeof *fake),
          *ints = malloc((size_t)batch * sizeof *ints);
  hawq_qrunner *runner = NULL;
  void *ws = NULL;
  hawq_status st =
      x && fake && ints ? HAWQ_OK : hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  if (!st) {
    st = hawq_qrunner_create(
        qm, &(hawq_qrunner_options){.isa = HAWQ_ISA_COUNT, .threads = threads, .max_batch = batch},
        &runner, err);
  }
  size_t ws_size = runner ? hawq_qrunner_workspace_size(runner) : 0;
  if (!st && !(ws = aligned_alloc(64, (ws_size + 63) & ~(size_t)63)))
    st = hawq_fail(err, HAWQ_ERR_NO_MEMORY, "out of memory");
  cli_progress prog;
  cli_progress_start(&prog, "evaluate", n);
  for (int64_t first = 0; !st && first < n; first += batch) {
    int m = (int)(n - first < batch ? n - first : batch);
    /* The train plan's batch is fixed: a short last batch is padded with zeros. */
    memset(x, 0, (size_t)(batch * per) * sizeof *x);
    hawq_dataset_fill_batch(ds, first, m, pp, x);
    const float *z;
    int64_t classes;
    if ((st = hawq_qat_logits(q, x, &z, &classes, err))) break;
    for (int i = 0; i < m; i++) {
      int best = 0;
      for (int c = 1; c < classes; c++)
        if (z[i * classes + c] > z[i * classes + best]) best = c;
      fake[i] = best;
    }
    st = hawq_qrunner_classify(runner, ds->images + first * per, m, ws, ws_size, ints, NULL, err);
    for (int i = 0; !st && i < m; i++) {
      int label = ds->labels[first + i];
      acc->fake_correct += fake[i] == label;
      acc->int_correct += ints[i] == label;
      acc->agree += fake[i] == ints[i];
    }
    cli_progress_update(&prog, first + m, NULL);
  }
  cli_progress_finish(&prog);
  free(ws);
  hawq_qrunner_destroy(runner);
  hawq_free(x);
  free(fake);
  free(ints);
  return st;
}

static char *qat_json(const hawq_calib_options *co, const char *source, const hawq_qat_options *o,
                      int64_t steps, double lr, const char *optimizer) {
  char *calib = hawq_calib_json(co, source);
  cJSON *c = calib ? cJSON_Parse(calib) : NULL;
  free(calib);
  if (!c) return NULL;
  cJSON *f = cJSON_AddObjectToObject(c, "finetune");
  if (f) {
    cJSON_AddNumberToObject(f, "steps", (double)steps);
    cJSON_AddNumberToObject(f, "batch", o->batch);
    cJSON_AddStringToObject(f, "optimizer", optimizer);
    cJSON_AddNumberToObject(f, "lr", lr);
    cJSON_AddNumberToObject(f, "bn_freeze_step", (double)o->bn_freeze_step);
    cJSON_AddNumberToObject(f, "act_freeze_step", (double)o->act_freeze_step);
    cJSON_AddNumberToObject(f, "act_momentum", o->act_momentum);
    cJSON_AddNumberToObject(f, "distill_weight", o->distill_weight);
    cJSON_AddNumberToObject(f, "distill_temperature", o->distill_temperature);
  }
  char *s = cJSON_PrintUnformatted(c);
  cJSON_Delete(c);
  return s;
}

int cmd_finetune(int argc, char **argv) {
  const char *data = NULL, *bits = NULL, *output = NULL, *mean = NULL, *std = NULL,
             *optimizer = "sgd", *schedule = "cosine", *save_float = NULL;
  hawq_calib_options co = hawq_calib_defaults();
  hawq_qat_options qo = hawq_qat_defaults();
  long long steps = 0, batch = qo.batch, limit = 0, crop_pad = 2, seed = 1, bn_freeze = 0,
            act_freeze = -2, calib_images = co.images, eval_limit = -1,
            threads = cli_default_threads();
  double epochs = 1, lr = -1, wd = qo.optim.weight_decay, act_momentum = qo.act_momentum,
         percentile = 0, distill = 0, temperature = qo.distill_temperature;
  bool no_flip = false, json = false;
  const cli_opt opts[] = {
      {"--data", CLI_STRING, &data, 0, 0},
      {"--bits", CLI_STRING, &bits, 0, 0},
      {"-o", CLI_STRING, &output, 0, 0},
      {"--epochs", CLI_DOUBLE, &epochs, 0, 1e6},
      {"--steps", CLI_INT, &steps, 1, 1e12},
      {"--batch", CLI_INT, &batch, 1, 65536},
      {"--optimizer", CLI_STRING, &optimizer, 0, 0},
      {"--lr", CLI_DOUBLE, &lr, 0, 10},
      {"--schedule", CLI_STRING, &schedule, 0, 0},
      {"--wd", CLI_DOUBLE, &wd, 0, 1},
      {"--limit", CLI_INT, &limit, 1, 1e12},
      {"--crop-pad", CLI_INT, &crop_pad, 0, 64},
      {"--no-flip", CLI_FLAG, &no_flip, 0, 0},
      {"--seed", CLI_INT, &seed, 0, 9e15},
      {"--bn-freeze", CLI_INT, &bn_freeze, 0, 1e12},
      {"--act-freeze", CLI_INT, &act_freeze, -1, 1e12},
      {"--act-momentum", CLI_DOUBLE, &act_momentum, 0, 0.999999},
      {"--calib-images", CLI_INT, &calib_images, 1, 1e9},
      {"--percentile", CLI_DOUBLE, &percentile, 50.000001, 100},
      {"--distill", CLI_DOUBLE, &distill, 0, 1},
      {"--temperature", CLI_DOUBLE, &temperature, 0.01, 1000},
      {"--eval-limit", CLI_INT, &eval_limit, 0, 1e12},
      {"--save-float", CLI_STRING, &save_float, 0, 0},
      {"--threads", CLI_INT, &threads, 1, 1024},
      {"--mean", CLI_STRING, &mean, 0, 0},
      {"--std", CLI_STRING, &std, 0, 0},
      {"--json", CLI_FLAG, &json, 0, 0},
  };
  const char *model;
  int rc =
      cli_parse_model("finetune", help, argc, argv, opts, sizeof opts / sizeof opts[0], &model);
  if (rc) return rc < 0 ? CLI_OK : rc;
  if (!data) return cli_usage_error("finetune", "--data is required");
  if (!bits) return cli_usage_error("finetune", "--bits is required (8, 4, wXaY or a JSON file)");
  if (!output) return cli_usage_error("finetune", "-o FILE.hqm is required");
  bool adamw = !strcmp(optimizer, "adamw");
  if (!adamw && strcmp(optimizer, "sgd"))
    return cli_usage_error("finetune", "--optimizer must be sgd or adamw, got '%s'", optimizer);
  bool cosine = !strcmp(schedule, "cosine");
  if (!cosine && strcmp(schedule, "constant"))
    return cli_usage_error("finetune", "--schedule must be cosine or constant, got '%s'", schedule);
  if (lr < 0) lr = adamw ? 1e-5 : 0.002;

  hawq_error err;
  hawq_graph *g = NULL;
  hawq_dataset *train = NULL, *test = NULL;
  hawq_calib_range *ranges = NULL;
  hawq_qmodel *qm = NULL;
  hawq_qat *q = NULL;
  hawq_loader *loader = NULL;
  hawq_bit_config cfg = {0};
  if (hawq_bit_config_parse(bits, &cfg, &err) || hawq_graph_load_onnx(model, NULL, &g, &err) ||
      hawq_dataset_load(data, "train", &train, &err) ||
      (eval_limit != 0 && hawq_dataset_load(data, "test", &test, &err))) {
    rc = cli_report(&err);
    goto done;
  }
  if (hawq_preprocess_override(&g->preprocess, mean, std, NULL, &err) ||
      hawq_preprocess_check(&g->preprocess, train->channels, "preprocessing", &err)) {
    rc = cli_report(&err);
    goto done;
  }
  const hawq_preprocess pp = g->preprocess;
  if ((rc = cli_check_image_input(model, g, train))) goto done;
  hawq_qlayer *layers = NULL;
  int n_layers = 0;
  if (hawq_resolve_bits(g, &cfg, &layers, &n_layers, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  free(layers);

  /* Initial ranges: post-training calibration, as hawq calibrate does it. */
  co.images = calib_images < train->count ? calib_images : train->count;
  co.threads = (int)threads;
  co.percentile = percentile;
  co.batch = hawq_calib_batch_limit(g, co.batch, (size_t)2 << 30);
  if (!(ranges = calloc((size_t)g->n_tensors, sizeof *ranges))) {
    fprintf(stderr, "hawq: out of memory\n");
    rc = CLI_INTERNAL;
    goto done;
  }
  double t_start = cli_now();
  if (hawq_calibrate(g, train, &pp, &co, ranges, NULL, NULL, &err)) {
    rc = cli_report(&err);
    goto done;
  }

  int64_t n_train = limit > 0 && limit < train->count ? limit : train->count;
  if (n_train < batch) {
    fprintf(stderr, "hawq: finetune: %lld training images are fewer than one batch of %lld\n",
            (long long)n_train, batch);
    rc = CLI_BAD_INPUT;
    goto done;
  }
  hawq_loader_options lo = {.ds = train,
                            .count = n_train,
                            .batch = (int)batch,
                            .shuffle = true,
                            .drop_last = true,
                            .crop_pad = (int)crop_pad,
                            .flip = !no_flip,
                            .seed = (uint64_t)seed,
                            .pp = pp};
  if (hawq_loader_create(&lo, &loader, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  int64_t per_epoch = hawq_loader_batches(loader);
  int64_t total = steps > 0 ? steps : (int64_t)llround(epochs * (double)per_epoch);
  if (total < 1 && epochs > 0) total = 1;
  qo.batch = (int)batch;
  qo.threads = (int)threads;
  qo.optim.kind = adamw ? HAWQ_OPTIM_ADAMW : HAWQ_OPTIM_SGD;
  qo.optim.weight_decay = (float)wd;
  qo.bn_freeze_step = bn_freeze;
  qo.act_freeze_step = act_freeze == -2 ? total / 2 : act_freeze;
  qo.act_momentum = act_momentum;
  qo.distill_weight = distill;
  qo.distill_temperature = temperature;
  if (hawq_qat_create(g, &cfg, ranges, &qo, &q, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  int fq_w, fq_a;
  hawq_qat_count(q, &fq_w, &fq_a);
  fprintf(stderr,
          "hawq finetune: %s, %d weight and %d activation quantizers; %lld steps of %lld images "
          "(%.2f epochs of %lld), %s lr %g, %d threads\n",
          model, fq_w, fq_a, (long long)total, batch, (double)total / (double)per_epoch,
          (long long)n_train, optimizer, lr, (int)threads);
  hawq_schedule sched = {.kind = cosine ? HAWQ_SCHEDULE_COSINE : HAWQ_SCHEDULE_CONSTANT,
                         .lr = (float)lr,
                         .final_lr = 0,
                         .warmup = 0,
                         .total = total};
  double t_train = cli_now(), last_loss = 0;
  int64_t step = 0;
  for (int64_t epoch = 0; step < total; epoch++) {
    hawq_loader_start_epoch(loader, epoch);
    int64_t in_epoch = total - step < per_epoch ? total - step : per_epoch;
    char label[48];
    snprintf(label, sizeof label, "epoch %lld", (long long)epoch + 1);
    cli_progress prog;
    cli_progress_start(&prog, label, in_epoch);
    double loss_sum = 0;
    int64_t seen = 0, hits = 0;
    const float *x;
    const int32_t *y;
    int n;
    for (int64_t b = 0; b < in_epoch && hawq_loader_next(loader, &x, &y, &n); b++, step++) {
      double loss;
      int64_t correct;
      if (hawq_qat_step(q, x, y, hawq_schedule_lr(&sched, step), &loss, &correct, &err)) {
        rc = cli_report(&err);
        goto done;
      }
      loss_sum += loss;
      hits += correct;
      seen += n;
      char extra[96];
      snprintf(extra, sizeof extra, "loss %.4f acc %.2f%%", loss_sum / (double)(b + 1),
               100.0 * (double)hits / (double)seen);
      cli_progress_update(&prog, b + 1, extra);
      last_loss = loss_sum / (double)(b + 1);
    }
    cli_progress_finish(&prog);
  }
  if (hawq_qat_fold(q, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  double train_seconds = cli_now() - t_train;
  if (hawq_qat_lower(q, &qm, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  qm->calibration_json = qat_json(&co, train->source, &qo, total, lr, optimizer);
  qm->source_name = strdup(model);
  if (cli_file_crc(model, &qm->source_crc32, &qm->source_size, &err) ||
      hawq_qmodel_save(qm, output, &err) ||
      (save_float && hawq_onnx_write_graph(hawq_qat_graph(q), save_float, NULL, &err))) {
    rc = cli_report(&err);
    goto done;
  }
  accuracy acc = {0};
  int64_t n_test = !test                                        ? 0
                   : eval_limit > 0 && eval_limit < test->count ? eval_limit
                                                                : test->count;
  if (n_test > 0 && evaluate(q, qm, test, n_test, &pp, (int)batch, (int)threads, &acc, &err)) {
    rc = cli_report(&err);
    goto done;
  }
  double seconds = cli_now() - t_start;
  hawq_qcost cost = hawq_qmodel_cost(qm, -1);
  double fake = n_test ? 100.0 * (double)acc.fake_correct / (double)n_test : NAN;
  double ints = n_test ? 100.0 * (double)acc.int_correct / (double)n_test : NAN;
  if (json) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "output", output);
    cJSON_AddNumberToObject(o, "steps", (double)total);
    cJSON_AddNumberToObject(o, "epochs", (double)total / (double)per_epoch);
    cJSON_AddNumberToObject(o, "batch", (double)batch);
    cJSON_AddNumberToObject(o, "train_images", (double)n_train);
    cJSON_AddNumberToObject(o, "final_loss", last_loss);
    cJSON_AddNumberToObject(o, "seconds", train_seconds);
    cJSON_AddNumberToObject(o, "total_seconds", seconds);
    cJSON_AddNumberToObject(o, "images", (double)n_test);
    if (n_test) {
      cJSON_AddNumberToObject(o, "fakequant_top1", fake);
      cJSON_AddNumberToObject(o, "fakequant_top1_correct", (double)acc.fake_correct);
      cJSON_AddNumberToObject(o, "integer_top1", ints);
      cJSON_AddNumberToObject(o, "integer_top1_correct", (double)acc.int_correct);
      cJSON_AddNumberToObject(o, "agreement", 100.0 * (double)acc.agree / (double)n_test);
    } else {
      cJSON_AddNullToObject(o, "fakequant_top1");
      cJSON_AddNullToObject(o, "integer_top1");
    }
    cJSON_AddNumberToObject(o, "weight_bytes", (double)cost.bytes);
    cJSON_AddNumberToObject(o, "bops", (double)cost.bops);
    cJSON_AddRawToObject(o, "bits", qm->bits_json ? qm->bits_json : "null");
    char *s = cJSON_Print(o);
    if (s) puts(s);
    cJSON_free(s);
    cJSON_Delete(o);
  } else {
    char a[32], b[32];
    printf(
        "wrote %s: weights %s bytes, %s BOPS per image; %lld steps in %.1f s (final loss %.4f)\n",
        output, cli_si((double)cost.bytes, a, sizeof a), cli_si((double)cost.bops, b, sizeof b),
        (long long)total, train_seconds, last_loss);
    if (n_test) {
      printf(
          "test top-1 on %lld images: fake-quant %.2f%% (%lld), integer %.2f%% (%lld); "
          "predictions agree on %.2f%%\n",
          (long long)n_test, fake, (long long)acc.fake_correct, ints, (long long)acc.int_correct,
          100.0 * (double)acc.agree / (double)n_test);
    }
  }
done:
  hawq_loader_destroy(loader);
  hawq_qat_destroy(q);
  hawq_bit_config_free(&cfg);
  free(ranges);
  hawq_qmodel_destroy(qm);
  hawq_dataset_destroy(train);
  hawq_dataset_destroy(test);
  hawq_graph_destroy(g);
  return rc;
}
