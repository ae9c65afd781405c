'use strict';
// ONNX Runtime (onnxruntime-node, CPU EP, graph optimisation 'all') latency on one model, with
// the same protocol as bench_float: node bench/ort_time.js MODEL [--batch B] [--threads T]
// [--runs R] [--warmup W]. Needs the anchors' node set-up in build/anchors/node (bench/run_float.sh
// makes it). Prints one JSON line.
const path = require('path');
const ort = require(path.join(__dirname, '..', 'build', 'anchors', 'node', 'node_modules',
                              'onnxruntime-node'));

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : 0.5 * (s[m - 1] + s[m]);
}

async function main() {
  const argv = process.argv.slice(2);
  const model = argv[0];
  const opt = { batch: 1, threads: 1, runs: 30, warmup: 5 };
  for (let i = 1; i + 1 < argv.length; i += 2) opt[argv[i].replace(/^--/, '')] = +argv[i + 1];
  const sess = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: opt.threads, interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all' });
  const name = sess.inputNames[0];
  // The input shape from the model file is not exposed by onnxruntime-node; take it from argv.
  const dims = (process.env.HAWQ_BENCH_INPUT || '3,224,224').split(',').map(Number);
  const n = opt.batch * dims.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; x[i] = s / 4294967296 - 0.5; }
  const feeds = { [name]: new ort.Tensor('float32', x, [opt.batch, ...dims]) };
  const ms = [];
  for (let i = 0; i < opt.warmup + opt.runs; i++) {
    const t0 = process.hrtime.bigint();
    await sess.run(feeds);
    const t = Number(process.hrtime.bigint() - t0) / 1e6;
    if (i >= opt.warmup) ms.push(t);
  }
  console.log(JSON.stringify({ engine: 'onnxruntime fp32', model, batch: opt.batch,
    threads: opt.threads, runs: opt.runs, median_ms: +median(ms).toFixed(3),
    min_ms: +Math.min(...ms).toFixed(3), max_ms: +Math.max(...ms).toFixed(3) }));
}
main().catch((e) => { console.error(e.message); process.exit(1); });
