#!/usr/bin/python3
"""PyTorch's own int8 post-training static quantization of a Fashion-MNIST ResNet: the anchor for
hawq's post-training quantization.

  /usr/bin/python3 bench/torch_ptq.py MODEL.onnx [--calib-images N] [--json out.json]

MODEL.onnx is one of hawq's Fashion-MNIST ResNets: the PyTorch-trained fixture
(tests/models/torch/fmnist_resnet14.onnx, tools/make_models.py naming) or a hawq-trained one
(models/fmnist_resnet20.onnx, torchvision naming: conv1, layerS.B, downsample). The script rebuilds
it as tools/make_models.py's FmnistResNet (stage widths and blocks per stage read from the
initializers), checks every Conv node's attributes against the module, loads the weights, and
checks the float model's top-1 against the figure recorded for the model (the .torch.json next
to it, or the hawq.train.summary metadata); a mismatch is fatal.

It then quantizes with PyTorch 1.13's FX graph mode, onednn engine:
get_default_qconfig_mapping("onednn") (activations: HistogramObserver, quint8 per-tensor affine;
weights: PerChannelMinMaxObserver, qint8 per-channel symmetric), prepare_fx (which folds BN into
the convolutions and fuses conv+relu, add+relu), calibration in eval mode, convert_fx, and
evaluates top-1 of the float and the int8 model on all 10000 test images. If the build has no
onednn engine it falls back to x86, fbgemm or qnnpack and says so.

Calibration uses exactly the images `hawq calibrate --calib-images N` uses: the first N images of
the training split in file order, without augmentation, preprocessed as hawq does from the model's
metadata (x = (pixel * hawq.input.pixel_scale - hawq.input.mean) / hawq.input.std, in float32).
The two int8 accuracies therefore differ only by the quantizers (range estimation, granularity,
rounding, what is fused), not by data. PyTorch's int8 model still applies float scales and float
biases inside its kernels; hawq's is integer-only.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in tools/
sys.path.insert(0, os.path.join(ROOT, "tools"))
from make_models import FMNIST_DIR, FmnistResNet, read_idx  # noqa: E402

ENGINES = ("onednn", "x86", "fbgemm", "qnnpack")  # preferred first


# ---------------------------------------------------------------------------------------------
# Data, preprocessed as hawq does.

def load_split(split, data_dir):
    prefix = "train" if split == "train" else "t10k"
    arrays = []
    for kind in ("images-idx3", "labels-idx1"):
        base = os.path.join(data_dir, f"{prefix}-{kind}-ubyte")
        path = base if os.path.exists(base) else base + ".gz"
        arrays.append(read_idx(path))
    return arrays[0], arrays[1].astype(np.int64)


def preprocess_table(model):
    """The float32 input value of each pixel value 0..255, from the model's hawq.input.* metadata
    (defaults: pixel_scale 1/255, mean 0, std 1), computed in float32 as hawq computes it."""
    meta = {p.key: p.value for p in model.metadata_props}

    def scalar(key, default):
        vals = [float(v) for v in meta.get(key, repr(default)).split(",")]
        if len(vals) != 1:
            raise SystemExit(f"{key} = {meta[key]!r}: expected one value for a 1-channel input")
        return np.float32(vals[0])

    scale = scalar("hawq.input.pixel_scale", 1.0 / 255.0)
    mean, std = scalar("hawq.input.mean", 0.0), scalar("hawq.input.std", 1.0)
    table = (np.arange(256, dtype=np.float32) * scale - mean) / std
    return table.astype(np.float32), (float(scale), float(mean), float(std))


def to_input(images_u8, table):
    return torch.from_numpy(table[images_u8]).unsqueeze(1)  # N x 1 x 28 x 28


# ---------------------------------------------------------------------------------------------
# The ONNX ResNet as an FmnistResNet.

class ResNet(FmnistResNet):
    """FmnistResNet with torch.flatten in place of x.view(x.size(0), -1): the same function.
    With the view, torch 1.13's FX quantization keeps the tensor whose size() is read, and the
    ops before it back to the last residual add (add, ReLU, pooling), in float."""

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.layers(self.stem(x)), 1)
        return self.fc(torch.flatten(x, 1))


def onnx_weights(graph):
    init = {t.name: numpy_helper.to_array(t).copy() for t in graph.initializer}
    for n in graph.node:  # the PyTorch exporter shares equal parameters through Identity nodes
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
    return init


def to_make_models_name(name, blocks):
    """An initializer name in torchvision naming (conv1, bn1, layerS.B.*, downsample, fc) as
    FmnistResNet names it (stem.0, stem.1, layers.K.*, shortcut, fc)."""
    parts = name.split(".")
    if parts[0] in ("conv1", "bn1"):
        return ".".join(["stem", "0" if parts[0] == "conv1" else "1"] + parts[1:])
    if parts[0].startswith("layer") and parts[0][5:].isdigit():
        k = (int(parts[0][5:]) - 1) * blocks + int(parts[1])
        rest = ["shortcut" if p == "downsample" else p for p in parts[2:]]
        return ".".join(["layers", str(k)] + rest)
    return name


def build_float_model(model_proto):
    graph = model_proto.graph
    init = onnx_weights(graph)
    if "conv1.weight" in init and "layer1.0.conv1.weight" in init:   # torchvision naming
        per_stage = {len({n.split(".")[1] for n in init if n.startswith(f"layer{s}.")})
                     for s in {n[5:].split(".")[0] for n in init if n.startswith("layer")}}
        if len(per_stage) != 1:
            raise SystemExit(f"stages have different block counts {sorted(per_stage)}")
        blocks, = per_stage
        rename = {n: to_make_models_name(n, blocks) for n in init}
    elif "stem.0.weight" in init:                                       # make_models naming
        rename = {n: n for n in init}
    else:
        raise SystemExit("not a ResNet this script knows: expected stem.0.weight (tools/make_models.py)"
                         " or conv1.weight + layer1.0.conv1.weight (torchvision naming)")
    w = {rename[n]: a for n, a in init.items()}

    # A stage starts at the first block and at every block with a projection shortcut.
    nblocks = len({n.split(".")[1] for n in w if n.startswith("layers.")})
    starts = [k for k in range(nblocks) if k == 0 or f"layers.{k}.shortcut.0.weight" in w]
    counts = {b - a for a, b in zip(starts, starts[1:] + [nblocks])}
    if len(counts) != 1:
        raise SystemExit(f"stages have different block counts {sorted(counts)}")
    arch = {"widths": [int(w[f"layers.{k}.conv1.weight"].shape[0]) for k in starts],
            "blocks": counts.pop(), "classes": int(w["fc.weight"].shape[0])}

    net = ResNet(widths=tuple(arch["widths"]), blocks=arch["blocks"], classes=arch["classes"])
    state = net.state_dict()
    unused = sorted(n for n in w if n not in state and w[n].dtype.kind == "f")
    missing = sorted(k for k in state if k not in w and not k.endswith("num_batches_tracked"))
    if unused or missing:
        raise SystemExit(f"initializers and module differ: unused {unused}, missing {missing}")
    for k in state:
        if k in w and tuple(state[k].shape) != w[k].shape:
            raise SystemExit(f"{k}: ONNX shape {w[k].shape}, module shape {tuple(state[k].shape)}")
    net.load_state_dict({k: torch.from_numpy(w[k]) for k in state if k in w}, strict=False)
    check_structure(graph, net, rename)
    net.eval()
    return net, arch


def check_structure(graph, net, rename):
    """Every Conv node is a Conv2d of the module with the same attributes, and vice versa;
    every BatchNormalization has PyTorch's epsilon; the classifier is a plain Gemm."""
    modules = dict(net.named_modules())
    convs = {name for name, m in modules.items() if isinstance(m, nn.Conv2d)}
    seen = set()
    for n in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Conv":
            name = rename.get(n.input[1], n.input[1]).rsplit(".", 1)[0]
            m = modules.get(name)
            if not isinstance(m, nn.Conv2d) or len(n.input) > 2:
                raise SystemExit(f"Conv {n.name}: no bias-free Conv2d {name} in the module")
            pads = attrs.get("pads", [0, 0, 0, 0])
            got = (tuple(attrs.get("strides", [1, 1])), (pads[0], pads[1]),
                   tuple(attrs.get("dilations", [1, 1])), attrs.get("group", 1))
            want = (m.stride, m.padding, m.dilation, m.groups)
            if got != want or pads[:2] != pads[2:]:
                raise SystemExit(f"Conv {n.name}: stride/pads/dilation/group {got}, module {want}")
            seen.add(name)
        elif n.op_type == "BatchNormalization":
            if abs(attrs.get("epsilon", 1e-5) - 1e-5) > 1e-9:
                raise SystemExit(f"BatchNormalization {n.name}: epsilon {attrs['epsilon']}")
        elif n.op_type == "Gemm":
            if (attrs.get("transB", 0) != 1 or attrs.get("transA", 0) != 0
                    or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
                raise SystemExit(f"Gemm {n.name}: {attrs} is not a Linear layer")
    if seen != convs:
        raise SystemExit(f"Conv nodes and module convolutions differ: {sorted(seen ^ convs)}")


def recorded_float_correct(path, model_proto):
    """The float top-1 recorded for the model: the .torch.json next to a PyTorch-trained model,
    else the test accuracy in hawq's hawq.train.summary metadata."""
    side = os.path.splitext(path)[0] + ".torch.json"
    if os.path.exists(side):
        with open(side) as f:
            info = json.load(f)
        return int(info["correct"]), int(info["test_images"]), side
    meta = {p.key: p.value for p in model_proto.metadata_props}
    if "hawq.train.summary" in meta:
        s = json.loads(meta["hawq.train.summary"])
        if "test_top1" in s and "test_images" in s:
            n = int(s["test_images"])
            return int(round(s["test_top1"] * n / 100.0)), n, "hawq.train.summary metadata"
    return None


# ---------------------------------------------------------------------------------------------
# Quantization and evaluation.

def pick_engine():
    supported = torch.backends.quantized.supported_engines
    for e in ENGINES:
        if e in supported:
            if e != ENGINES[0]:
                print(f"NOTE: this PyTorch has no '{ENGINES[0]}' quantized engine "
                      f"(supported: {supported}); falling back to '{e}'", file=sys.stderr)
            return e
    raise SystemExit(f"no usable quantized engine among {supported}")


def describe_observer(ctor):
    p = getattr(ctor, "p", ctor)  # torch's _PartialWrapper around a functools.partial
    func = getattr(p, "func", p)
    kw = dict(getattr(p, "keywords", {}) or {})
    args = ", ".join(f"{k}={v}" for k, v in kw.items())
    return f"{getattr(func, '__name__', str(func))}({args})"


def describe_qconfig(engine, mapping):
    q = mapping.global_qconfig
    return (f"get_default_qconfig_mapping('{engine}'): activation {describe_observer(q.activation)},"
            f" weight {describe_observer(q.weight)}")


def top1(model, x_u8, y, table, batch=1000):
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x_u8), batch):
            logits = model(to_input(x_u8[i:i + batch], table))
            correct += int((logits.argmax(1).numpy() == y[i:i + batch]).sum())
    return correct


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="ONNX Fashion-MNIST ResNet")
    ap.add_argument("--calib-images", type=int, default=1024,
                    help="calibrate on the first N training images (default 1024)")
    ap.add_argument("--calib-batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--data", default=FMNIST_DIR, help="Fashion-MNIST IDX directory")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    if not 1 <= args.calib_images <= 60000:
        ap.error("--calib-images must be in 1..60000")

    t0 = time.time()
    torch.set_num_threads(args.threads)
    engine = pick_engine()
    torch.backends.quantized.engine = engine

    proto = onnx.load(args.model)
    net, arch = build_float_model(proto)
    table, (scale, mean, std) = preprocess_table(proto)
    xtr, _ = load_split("train", args.data)
    xte, yte = load_split("test", args.data)
    calib = xtr[:args.calib_images]

    float_correct = top1(net, xte, yte, table)
    expect = recorded_float_correct(args.model, proto)
    if expect is None:
        print("NOTE: no recorded float accuracy for this model; the float model is unchecked",
              file=sys.stderr)
    elif (float_correct, len(yte)) != expect[:2]:
        raise SystemExit(f"FAIL: float model scores {float_correct}/{len(yte)}, {expect[2]} "
                         f"records {expect[0]}/{expect[1]}: the model was not rebuilt faithfully")

    mapping = get_default_qconfig_mapping(engine)
    prepared = prepare_fx(net, mapping, example_inputs=(to_input(calib[:1], table),))
    prepared.eval()
    with torch.no_grad():
        for i in range(0, len(calib), args.calib_batch):
            prepared(to_input(calib[i:i + args.calib_batch], table))
    qnet = convert_fx(prepared)
    float_ops = [n.name for n in qnet.graph.nodes if n.op == "call_method" and n.target == "dequantize"]
    if len(float_ops) != 1:
        raise SystemExit(f"FAIL: the int8 model dequantizes {len(float_ops)} times ({float_ops}), "
                         "not only its output: part of it runs in float")
    int8_correct = top1(qnet, xte, yte, table)
    seconds = time.time() - t0

    n = len(yte)
    print(f"model        {args.model}  (ResNet widths {arch['widths']}, {arch['blocks']} blocks/stage)")
    print(f"preprocess   x = (pixel * {scale:.9g} - {mean:.9g}) / {std:.9g}")
    fallback = "" if engine == ENGINES[0] else f" (fallback: this build has no {ENGINES[0]})"
    print(f"torch        {torch.__version__}, engine {engine}{fallback}, {args.threads} thread(s)")
    print(f"qconfig      {describe_qconfig(engine, mapping)}")
    print(f"calibration  first {len(calib)} training images, file order, no augmentation")
    print()
    print(f"{'':12} {'correct':>13} {'top-1':>8}")
    print(f"{'float32':12} {f'{float_correct}/{n}':>13} {100 * float_correct / n:7.2f}%"
          + ("" if expect is None else f"  (recorded {expect[0]}/{expect[1]}, {expect[2]})"))
    print(f"{'int8 PTQ':12} {f'{int8_correct}/{n}':>13} {100 * int8_correct / n:7.2f}%"
          f"  ({int8_correct - float_correct:+d} images)")
    print(f"\n{seconds:.1f} s")

    if args.json:
        out = {"model": args.model, "engine": engine, "qconfig": describe_qconfig(engine, mapping),
               "calib_images": len(calib), "float_correct": float_correct,
               "int8_correct": int8_correct, "test_images": n, "seconds": round(seconds, 1),
               "torch": torch.__version__, "threads": args.threads,
               "command": " ".join(["/usr/bin/python3"] + sys.argv)}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
