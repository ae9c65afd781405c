#!/usr/bin/python3
"""Models hawq is tested and benchmarked on, made with PyTorch (Debian's python3-torch 1.13).

  train     train the small ResNet for Fashion-MNIST and export it: the PyTorch-trained fixture
            tests/models/torch/fmnist_resnet14.onnx (the foundation's default model) plus
            PyTorch's reference results next to it.
  sgdsteps  PyTorch's first SGD steps from that model on a fixed batch (losses and the logits
            after them, next to the model), the reference for hawq's training arithmetic.
  fixtures  small op-coverage CNNs exported at opsets 11, 13 and 17 with PyTorch's outputs on a
            random batch (tests/onnx/fixtures/): real exporter output for the importer tests.
  bench     torchvision ResNet18, ResNet50 and InceptionV3 with random weights (too large to commit).
  bad       small well-formed ONNX files that hawq must refuse (tests/cli/bad/): an unsupported op,
            an absurd input size.

Every export uses do_constant_folding=False (BatchNormalization stays a node, shape subgraphs stay
as the exporter writes them) and a dynamic batch axis. Run with /usr/bin/python3 (Debian's torch).
"""
import argparse
import gzip
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

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
FMNIST_MEAN, FMNIST_STD = 0.2860, 0.3530


def read_idx(path):
    """An IDX file (gzipped or not) as a numpy array, header checked."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} bytes of data, header says {dims}")
    return body.reshape(dims)


def load_fmnist(split):
    prefix = "train" if split == "train" else "t10k"
    x = read_idx(os.path.join(FMNIST_DIR, f"{prefix}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(FMNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
    return x, y.astype(np.int64)


def normalize(x_u8):
    x = torch.from_numpy(x_u8).float().div_(255.0).unsqueeze(1)
    return (x - FMNIST_MEAN) / FMNIST_STD


# ---------------------------------------------------------------------------------------------
# The default model: a ResNet-14 for 28x28 inputs (3 stages of 2 basic blocks, widths 16/32/64).

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:  # projection shortcut, as in ResNet option B
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class FmnistResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), blocks=2, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        x = F.adaptive_avg_pool2d(x, 1)
        # view(size(0), -1) rather than flatten: the exporter then writes the
        # Shape/Gather/Unsqueeze/Concat/Reshape subgraph that hawq must fold.
        return self.fc(x.view(x.size(0), -1))


def augment(xb, gen):
    """Random crop with 2-pixel zero padding and random horizontal flip, on a uint8 batch."""
    n = xb.shape[0]
    padded = np.pad(xb, ((0, 0), (2, 2), (2, 2)))
    dx = gen.integers(0, 5, n)
    dy = gen.integers(0, 5, n)
    out = np.empty_like(xb)
    for i in range(n):
        out[i] = padded[i, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
    flip = gen.random(n) < 0.5
    out[flip] = out[flip][:, :, ::-1]
    return out


def evaluate(model, x, y, batch=1000):
    model.eval()
    logits = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits.append(model(normalize(x[i:i + batch])))
    logits = torch.cat(logits)
    return logits, (logits.argmax(1).numpy() == y).mean()


def export_onnx(model, path, opset, example, metadata):
    model.eval()
    torch.onnx.export(model, example, path, opset_version=opset, do_constant_folding=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE)
    m = onnx.load(path)
    for k, v in metadata.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, path)


def preprocess_metadata(mean, std):
    return {"hawq.input.pixel_scale": repr(1.0 / 255.0),
            "hawq.input.mean": ",".join(f"{v:.4f}" for v in mean),
            "hawq.input.std": ",".join(f"{v:.4f}" for v in std)}


def cmd_train(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    gen = np.random.default_rng(args.seed)
    xtr, ytr = load_fmnist("train")
    xte, yte = load_fmnist("test")
    model = FmnistResNet()
    nparams = sum(p.numel() for p in model.parameters())
    steps_per_epoch = len(xtr) // args.batch
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = gen.permutation(len(xtr))
        total = 0.0
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            xb = normalize(augment(xtr[idx], gen))
            yb = torch.from_numpy(ytr[idx])
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        _, acc = evaluate(model, xte, yte)
        print(f"epoch {epoch + 1}/{args.epochs}  loss {total / steps_per_epoch:.4f}  "
              f"test top-1 {100 * acc:.2f}%  {time.time() - t0:.0f} s", flush=True)
    logits, acc = evaluate(model, xte, yte)
    out = args.out
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    export_onnx(model, out, 13, normalize(xte[:2]),
                preprocess_metadata([FMNIST_MEAN], [FMNIST_STD]))
    stem = os.path.splitext(out)[0]
    ln = logits.numpy().astype(np.float32)
    np.save(stem + ".torch_logits100.npy", ln[:100])
    top2 = np.sort(ln, axis=1)[:, -2:]
    np.save(stem + ".torch_pred.npy", ln.argmax(1).astype(np.uint8))
    np.save(stem + ".torch_top2gap.npy", (top2[:, 1] - top2[:, 0]).astype(np.float32))
    info = {"accuracy_top1": float(acc), "correct": int(round(acc * len(yte))),
            "test_images": int(len(yte)), "parameters": int(nparams), "epochs": args.epochs,
            "seed": args.seed, "torch": torch.__version__, "onnx_opset": 13,
            "train_seconds": round(time.time() - t0),
            "command": "/usr/bin/python3 tools/make_models.py train " + " ".join(sys.argv[2:])}
    with open(stem + ".torch.json", "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(json.dumps(info))


# ---------------------------------------------------------------------------------------------
# Op-coverage fixtures: each exercises importer paths that the default model does not.

class ConvZoo(nn.Module):
    """Grouped, depthwise, dilated and strided convs, asymmetric constant Pad, LeakyReLU, ReLU6,
    Mul/Sub/Div by constants, MaxPool with ceil_mode, AvgPool with and without padding in the
    count, Flatten, Linear, Softmax."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 1, 1)
        self.g = nn.Conv2d(8, 8, 3, 1, 1, groups=2, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 16, 3, 2, 1, groups=8)     # depthwise with multiplier 2
        self.dil = nn.Conv2d(16, 16, 3, 1, 2, dilation=2)
        self.pw = nn.Conv2d(16, 12, 1)
        self.fc = nn.Linear(12 * 4 * 4, 10)
        for bn in [self.bn]:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = x * 2.0 - 0.5
        x = F.leaky_relu(self.c1(x), 0.1)
        x = F.relu6(self.bn(self.g(x)))
        x = F.pad(x, (0, 1, 1, 0))                      # asymmetric: left 0, right 1, top 1, bottom 0
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = F.relu(self.dw(x)) / 3.0
        x = F.avg_pool2d(self.dil(x), 3, 1, 1, count_include_pad=False)
        x = F.avg_pool2d(self.pw(x), 2, 1, 0)
        x = torch.flatten(x, 1)
        return F.softmax(self.fc(x), dim=1)


class InceptionBit(nn.Module):
    """Inception-style branches joined by Concat, a 3x3/1 AvgPool with count_include_pad, MaxPool
    with padding and dilation-free strides, GlobalAveragePool through mean, a residual Add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 2, 0)
        self.b1 = nn.Conv2d(16, 8, 1)
        self.b2a = nn.Conv2d(16, 6, 1)
        self.b2b = nn.Conv2d(6, 8, (1, 3), 1, (0, 1))
        self.b2c = nn.Conv2d(8, 8, (3, 1), 1, (1, 0))
        self.b3 = nn.Conv2d(16, 8, 1)
        self.bn = nn.BatchNorm2d(24)
        self.proj = nn.Conv2d(16, 24, 1, bias=False)
        self.fc = nn.Linear(24, 5)
        self.bn.running_mean.uniform_(-0.5, 0.5)
        self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = F.relu(self.stem(x))
        a = F.relu(self.b1(x))
        b = F.relu(self.b2c(F.relu(self.b2b(F.relu(self.b2a(x))))))
        c = F.relu(self.b3(F.avg_pool2d(x, 3, 1, 1)))
        y = F.relu(self.bn(torch.cat([a, b, c], 1)) + self.proj(x))
        y = F.max_pool2d(y, 3, 2, 1)
        y = F.adaptive_avg_pool2d(y, (1, 1))
        return self.fc(y.reshape(y.shape[0], -1))


class PlainNet(nn.Module):
    """A plain CNN for lowering tests: conv + BN + ReLU6, a depthwise conv, a pointwise conv,
    MaxPool, AvgPool without padding in the count, a Flatten of a 4x4 map into a Linear, and
    a ReLU between two Linears."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=8)
        self.bn2 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)
        for bn in [self.bn1, self.bn2]:
            bn.weight.data.uniform_(0.5, 1.5)
            bn.bias.data.uniform_(-0.5, 0.5)
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = F.relu6(self.bn1(self.c1(x)))
        x = F.relu(self.bn2(self.dw(x)))
        x = F.max_pool2d(F.relu(self.pw(x)), 2)
        x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


def cmd_qfixtures(args):
    """Models for the lowering tests (tests/quant/fixtures), random weights."""
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    model = PlainNet().eval()
    path = os.path.join(args.out, "plainnet.onnx")
    export_onnx(model, path, 13, torch.randn(1, 3, 16, 16), {})
    print(path, os.path.getsize(path), "bytes")


def cmd_fixtures(args):
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=True)
    cases = {"convzoo": (ConvZoo(), (3, 3, 20, 20)),
             "inception": (InceptionBit(), (3, 3, 17, 17))}
    for name, (model, shape) in cases.items():
        model.eval()
        x = torch.randn(*shape)
        with torch.no_grad():
            y = model(x)
        np.save(os.path.join(args.out, f"{name}.input.npy"), x.numpy())
        np.save(os.path.join(args.out, f"{name}.output.npy"), y.numpy())
        for opset in args.opsets:
            path = os.path.join(args.out, f"{name}_opset{opset}.onnx")
            export_onnx(model, path, opset, x, {})
            print(path, os.path.getsize(path), "bytes")


def cmd_bench(args):
    import torchvision
    torch.manual_seed(0)
    os.makedirs(args.out, exist_ok=True)
    nets = {"resnet18": (torchvision.models.resnet18(), 224),
            "resnet50": (torchvision.models.resnet50(), 224),
            "inception_v3": (torchvision.models.inception_v3(aux_logits=False, init_weights=True), 299)}
    for name, (model, size) in nets.items():
        path = os.path.join(args.out, f"{name}_fp32.onnx")
        export_onnx(model, path, 13, torch.randn(1, 3, size, size),
                    preprocess_metadata([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
        print(path, os.path.getsize(path), "bytes")


def cmd_bad(args):
    from onnx import TensorProto, helper
    os.makedirs(args.out, exist_ok=True)

    def model(name, nodes, inputs, outputs, inits=()):
        g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="hawq tools/make_models.py")
        path = os.path.join(args.out, name + ".onnx")
        onnx.save(m, path)
        print(path, os.path.getsize(path), "bytes")

    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])
    model("unsupported_op", [helper.make_node("Tanh", ["input"], ["t"], name="tanh_1"),
                             helper.make_node("Flatten", ["t"], ["logits"], name="flatten")],
          [image], [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 784])])
    huge = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 1 << 20, 1 << 20])
    model("absurd_input", [helper.make_node("Relu", ["input"], ["y"], name="relu")],
          [huge], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 1 << 20, 1 << 20])])


def cmd_sgdsteps(args):
    """PyTorch's training steps on the PyTorch-trained fixture, for hawq's train plan to match:
    a fixed batch (the first 64 training images, no augmentation), BN in training mode,
    SGD with Nesterov momentum and weight decay on conv/linear weights only (hawq's rule).
    Saves the loss of each step and the eval-mode logits of the batch afterwards."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = FmnistResNet()
    graph = onnx.load(args.model).graph
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    for n in graph.node:  # the exporter shares equal parameters through Identity nodes
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]].clone()
    missing = [k for k in model.state_dict() if k not in init and not k.endswith("num_batches_tracked")]
    assert not missing, missing
    model.load_state_dict({k: init[k] for k in init if k in model.state_dict()}, strict=False)
    xtr, ytr = load_fmnist("train")
    x, y = normalize(xtr[:args.batch]), torch.from_numpy(ytr[:args.batch])
    decay = [p for p in model.parameters() if p.dim() > 1]
    other = [p for p in model.parameters() if p.dim() <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.wd},
                           {"params": other, "weight_decay": 0.0}],
                          lr=args.lr, momentum=0.9, nesterov=True)
    model.train()
    losses = []
    for _ in range(args.steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        logits = model(x).numpy().astype(np.float32)
    stem = os.path.splitext(args.model)[0]
    np.save(stem + ".sgd_losses.npy", np.array(losses, dtype=np.float64))
    np.save(stem + ".sgd_logits.npy", logits)
    print("losses", losses)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--epochs", type=int, default=15)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--wd", type=float, default=5e-4)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("-o", "--out", default="tests/models/torch/fmnist_resnet14.onnx")
    f = sub.add_parser("fixtures")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--opsets", type=int, nargs="+", default=[11, 13, 17])
    f.add_argument("-o", "--out", default="tests/onnx/fixtures")
    b = sub.add_parser("bench")
    b.add_argument("-o", "--out", default="build/models")
    st = sub.add_parser("sgdsteps")
    st.add_argument("--model", default="tests/models/torch/fmnist_resnet14.onnx")
    st.add_argument("--batch", type=int, default=64)
    st.add_argument("--steps", type=int, default=3)
    st.add_argument("--lr", type=float, default=0.05)
    st.add_argument("--wd", type=float, default=5e-4)
    bad = sub.add_parser("bad")
    bad.add_argument("-o", "--out", default="tests/cli/bad")
    q = sub.add_parser("qfixtures")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("-o", "--out", default="tests/quant/fixtures")
    args = ap.parse_args()
    {"train": cmd_train, "fixtures": cmd_fixtures, "bench": cmd_bench, "bad": cmd_bad,
     "sgdsteps": cmd_sgdsteps, "qfixtures": cmd_qfixtures}[args.cmd](args)


if __name__ == "__main__":
    main()
