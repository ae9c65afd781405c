"""PyTorch 1.13 CPU training throughput on the same architectures hawq builds (hawq train
--arch): forward + backward + SGD step on fixed random batches, no data loading.

  /usr/bin/python3 bench/train_torch.py --arch resnet20 --batch 128 --threads 2 --steps 30

Prints one JSON line: the median and all step times, images/s, and the memory format used.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, width, stride, bottleneck):
        super().__init__()
        out = 4 * width if bottleneck else width
        if bottleneck:
            self.convs = nn.ModuleList([nn.Conv2d(cin, width, 1, bias=False),
                                        nn.Conv2d(width, width, 3, stride, 1, bias=False),
                                        nn.Conv2d(width, out, 1, bias=False)])
            self.bns = nn.ModuleList([nn.BatchNorm2d(width), nn.BatchNorm2d(width), nn.BatchNorm2d(out)])
        else:
            self.convs = nn.ModuleList([nn.Conv2d(cin, width, 3, stride, 1, bias=False),
                                        nn.Conv2d(width, width, 3, 1, 1, bias=False)])
            self.bns = nn.ModuleList([nn.BatchNorm2d(width), nn.BatchNorm2d(width)])
        self.down = None
        if stride != 1 or cin != out:
            self.down = nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
        self.out = out

    def forward(self, x):
        y = x
        for i, (c, b) in enumerate(zip(self.convs, self.bns)):
            y = b(c(y))
            if i < len(self.convs) - 1:
                y = F.relu(y)
        return F.relu(y + (self.down(x) if self.down is not None else x))


class Net(nn.Module):
    """The same graphs as src/float/arch.c."""

    def __init__(self, arch, channels, size, classes):
        super().__init__()
        layers = []
        if arch in ("resnet18", "resnet50"):
            bottleneck = arch == "resnet50"
            blocks = [2, 2, 2, 2] if arch == "resnet18" else [3, 4, 6, 3]
            widths = [64, 128, 256, 512]
            if size >= 112:
                self.stem = nn.Sequential(nn.Conv2d(channels, 64, 7, 2, 3, bias=False),
                                          nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
            else:
                self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, 1, 1, bias=False),
                                          nn.BatchNorm2d(64), nn.ReLU())
            cin = 64
        else:
            depth = int(arch[len("resnet"):])
            n = (depth - 2) // 6
            bottleneck, blocks, widths = False, [n, n, n], [16, 32, 64]
            self.stem = nn.Sequential(nn.Conv2d(channels, 16, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(16), nn.ReLU())
            cin = 16
        for s, (nb, w) in enumerate(zip(blocks, widths)):
            for i in range(nb):
                blk = Block(cin, w, 2 if s > 0 and i == 0 else 1, bottleneck)
                layers.append(blk)
                cin = blk.out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet20")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    model = Net(a.arch, a.channels, a.size, a.classes)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(a.batch, a.channels, a.size, a.size).contiguous(memory_format=fmt)
    y = torch.randint(0, a.classes, (a.batch,))
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t = time.perf_counter() - t0
        if step >= a.warmup:
            times.append(t)
    med = statistics.median(times)
    print(json.dumps({"engine": "pytorch " + torch.__version__, "arch": a.arch, "batch": a.batch,
                      "threads": a.threads, "format": "channels_last" if a.channels_last else "nchw",
                      "median_step_s": med, "images_per_s": a.batch / med,
                      "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
