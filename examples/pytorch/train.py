"""Softmax regression on the digits with PyTorch, on CUDA when available.

Writes /out/model.pt, and model.json in the format of the Go example's evaluator
(examples/digits), so the same eval image scores both trainers.
"""
import argparse, gzip, json, os

import torch


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [[float(v) for v in line.split(",")] for line in f if line.strip()]
    t = torch.tensor(rows)
    return t[:, :64] / 16.0, t[:, 64].long()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="/data/digits.csv.gz")
    p.add_argument("--out", default="/out")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--lr", type=float, default=0.5)
    a = p.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    x, y = load(a.data)
    keep = torch.tensor([i % 5 != 4 for i in range(len(y))])  # the held-out split of examples/digits
    x, y = x[keep].to(dev), y[keep].to(dev)
    model = torch.nn.Linear(64, 10).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    for epoch in range(a.epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    acc = (model(x).argmax(1) == y).float().mean().item()
    print(f"device {dev} loss {loss.item():.4f} train accuracy {acc:.4f}", flush=True)
    torch.save(model.state_dict(), os.path.join(a.out, "model.pt"))
    w, b = model.weight.detach().cpu().tolist(), model.bias.detach().cpu().tolist()
    with open(os.path.join(a.out, "model.json"), "w") as f:
        json.dump({"version": 1, "kind": "softmax", "weights": w, "bias": b}, f)
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump({"train_accuracy": acc, "device": dev, "epochs": a.epochs}, f)


if __name__ == "__main__":
    main()
