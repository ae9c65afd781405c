'use strict';
// Runs an ONNX model in ONNX Runtime (onnxruntime-node, CPU EP, one thread) and compares its
// outputs with hawq's, printing the largest absolute difference per output. Exit status 0 if
// every difference is within --tol (default 1e-4), 1 if not, 2 on errors. tools/ort_check.sh
// drives it; ONNX Runtime comes from build/anchors/node (bench/run_float.sh sets it up).
//
//   node tools/ort_logits.js MODEL.onnx --input X0.npy [--input X1.npy ...] --expect Y0.npy
//       [--expect Y1.npy ...]
//       Xk: the model's input k, logical layout, float32; Yk: output k as hawq computed it
//   node tools/ort_logits.js MODEL.onnx --fmnist N --preprocess META.json --expect LOGITS.npy
//       the first N Fashion-MNIST test images, preprocessed as hawq does from the
//       `hawq meta MODEL --json` output in META.json; LOGITS from `hawq eval --logits`
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const ort = require(path.join(__dirname, '..', 'build', 'anchors', 'node', 'node_modules',
                              'onnxruntime-node'));

const FMNIST_DIR = '/usr/share/datasets/fashion-mnist';

function fail(msg) {
  console.error(`ort_logits: ${msg}`);
  process.exit(2);
}

// float32 little-endian C-order .npy (format 1.0 to 3.0) -> { dims, data }
function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.length < 10 || b.toString('latin1', 0, 6) !== '\x93NUMPY') fail(`${file}: not a .npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = b.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
    fail(`${file}: expected little-endian float32 in C order, header ${header.trim()}`);
  }
  const m = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!m) fail(`${file}: no shape in the header`);
  const dims = m[1].split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const count = dims.reduce((a, d) => a * d, 1);
  if (b.length - start !== 4 * count) fail(`${file}: ${b.length - start} data bytes for ${count} floats`);
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = b.readFloatLE(start + 4 * i);
  return { dims, data };
}

function readIdxImages(n) {
  let file = path.join(FMNIST_DIR, 't10k-images-idx3-ubyte');
  let b;
  if (fs.existsSync(file)) b = fs.readFileSync(file);
  else b = zlib.gunzipSync(fs.readFileSync(file + '.gz'));
  if (b.readUInt32BE(0) !== 0x803) fail(`${file}: not an IDX image file`);
  const count = b.readUInt32BE(4), rows = b.readUInt32BE(8), cols = b.readUInt32BE(12);
  if (n > count) fail(`--fmnist ${n}: the test set has ${count} images`);
  return { pixels: b.subarray(16, 16 + n * rows * cols), rows, cols };
}

// x = (pixel * scale - mean) / std in float32 arithmetic, as hawq_dataset_fill_batch does (each
// operation on floats done in double and rounded once is the float result: double has more than
// twice float's precision).
function preprocess(pixels, meta) {
  const f = Math.fround;
  const pp = meta.preprocess;
  const scale = f(pp.pixel_scale), mean = f(pp.mean[0]), std = f(pp.std[0]);
  if (pp.mean.length !== 1 || pp.std.length !== 1) fail('per-channel preprocessing on 1-channel images');
  const table = new Float32Array(256);
  for (let v = 0; v < 256; v++) table[v] = f(f(f(v * scale) - mean) / std);
  const x = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) x[i] = table[pixels[i]];
  return x;
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv.length < 1) fail('usage: ort_logits.js MODEL.onnx (--input X.npy | --fmnist N --preprocess META.json) --expect Y.npy ...');
  const model = argv[0];
  const opt = { expect: [], input: [], tol: 1e-4 };
  for (let i = 1; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, ''), v = argv[i + 1];
    if (v === undefined) fail(`${argv[i]} needs a value`);
    if (k === 'expect' || k === 'input') opt[k].push(v);
    else if (['fmnist', 'preprocess', 'tol'].includes(k)) opt[k] = v;
    else fail(`unknown option ${argv[i]}`);
  }
  if (!opt.expect.length) fail('--expect is required');
  const sess = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all',
    logSeverityLevel: 3 }); // no warnings about unused (checkpoint) initializers
  const nIn = opt.input.length ? opt.input.length : 1;
  if (sess.inputNames.length !== nIn) fail(`${model}: ${sess.inputNames.length} inputs, ${nIn} given`);
  const expect = opt.expect.map(readNpy);
  if (expect.length > sess.outputNames.length) fail(`${model}: only ${sess.outputNames.length} outputs`);

  let x, dims, extra = [];
  if (opt.input.length) {
    const ins = opt.input.map(readNpy);
    ({ data: x, dims } = ins[0]);
    extra = ins.slice(1);
  } else if (opt.fmnist) {
    if (!opt.preprocess) fail('--fmnist needs --preprocess META.json');
    const n = +opt.fmnist;
    const img = readIdxImages(n);
    x = preprocess(img.pixels, JSON.parse(fs.readFileSync(opt.preprocess, 'utf8')));
    dims = [n, 1, img.rows, img.cols];
  } else {
    fail('--input or --fmnist is required');
  }
  // A given input runs as it is (its dimension 0 need not be a batch); images run in batches of
  // at most 100 (ONNX Runtime's memory), concatenated per output.
  const n = dims[0], per = x.length / n, step = opt.input.length ? n : 100;
  const got = expect.map((e) => new Float32Array(e.data.length));
  const filled = expect.map(() => 0);
  for (let first = 0; first < n; first += step) {
    const b = Math.min(step, n - first);
    const feeds = { [sess.inputNames[0]]: new ort.Tensor('float32', x.subarray(first * per, (first + b) * per), [b, ...dims.slice(1)]) };
    extra.forEach((e, k) => { feeds[sess.inputNames[k + 1]] = new ort.Tensor('float32', e.data, e.dims); });
    const res = await sess.run(feeds);
    expect.forEach((e, k) => {
      const t = res[sess.outputNames[k]];
      const want = opt.input.length ? e.dims : [b, ...e.dims.slice(1)];
      if (t.dims.join('x') !== want.join('x')) fail(`output ${k} has shape ${t.dims.join('x')}, hawq's ${want.join('x')}`);
      got[k].set(t.data, filled[k]);
      filled[k] += t.data.length;
    });
  }
  let worst = 0;
  expect.forEach((e, k) => {
    let d = 0;
    for (let i = 0; i < e.data.length; i++) {
      const di = Math.abs(got[k][i] - e.data[i]);
      if (!(di <= d)) d = di; // NaN wins
    }
    console.log(`${model}: output ${k} '${sess.outputNames[k]}' (${e.dims.join('x')}): max abs difference ${d.toExponential(3)}`);
    if (!(d <= worst)) worst = d;
  });
  const ok = worst <= +opt.tol;
  console.log(`${model}: max abs difference ${worst.toExponential(3)} (${ok ? 'within' : 'OVER'} ${opt.tol})`);
  process.exit(ok ? 0 : 1);
}
main().catch((e) => fail(e.message));
