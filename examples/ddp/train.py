"""A PyTorch DistributedDataParallel trainer that runs on one rig or across rigs.

The launch sets the standard rendezvous environment (torch.distributed's env://): gpunode
does for a multi-rig job (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, NODE_RANK, NNODES,
NPROC_PER_NODE), and so does torchrun for each process it starts on a rig:

    # one process per rig (CPU, or one GPU per rig), as gpunode starts it:
    python3 /train.py --out /out
    # several GPUs per rig: torchrun, from the image, reads the same variables
    torchrun --nnodes $NNODES --nproc_per_node $NPROC_PER_NODE --node_rank $NODE_RANK \
        --master_addr $MASTER_ADDR --master_port $MASTER_PORT /train.py --out /out

Without WORLD_SIZE (or with 1) it trains alone. The backend is NCCL on GPUs and gloo on
CPU. Every rank trains on its own shard of the data; DDP averages the gradients, so the
replicas stay equal, which the trainer checks at the end. Rank 0 writes the checkpoint
(model.pt, a state_dict) and metrics.json to --out; the other ranks write nothing.
"""
import argparse
import datetime
import gzip
import json
import os
import socket
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def data(path, seed):
    """The digits (64 features, 10 classes) when --data names the file, else a synthetic
    set with the same shape, the same on every rank."""
    if path and os.path.exists(path):
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            rows = [[float(v) for v in line.split(",")] for line in f if line.strip()]
        t = torch.tensor(rows)
        return t[:, :64] / 16.0, t[:, 64].long()
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(10, 64, generator=g) * 2.0
    y = torch.randint(0, 10, (2048,), generator=g)
    x = centers[y] + torch.randn(2048, 64, generator=g)
    return x, y


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="", help="digits.csv(.gz); empty = synthetic data")
    p.add_argument("--out", default="/out")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=int, default=300, help="seconds to wait for the other ranks")
    a = p.parse_args()

    world = env_int("WORLD_SIZE", 1)
    rank = env_int("RANK", 0)
    local_rank = env_int("LOCAL_RANK", 0)
    node_rank = env_int("NODE_RANK", 0)
    cuda = torch.cuda.is_available()
    dev = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(dev)
    backend = "nccl" if cuda else "gloo"
    distributed = world > 1
    if distributed:
        dist.init_process_group(backend, init_method="env://", world_size=world, rank=rank,
                                timeout=datetime.timedelta(seconds=a.timeout))
    print(f"rank {rank} of {world} joined (node {node_rank}, backend {backend if distributed else 'none'}, device {dev})", flush=True)

    torch.manual_seed(a.seed)  # the same initial weights everywhere (DDP broadcasts rank 0's anyway)
    x, y = data(a.data, a.seed)
    shard_x, shard_y = x[rank::world].to(dev), y[rank::world].to(dev)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).to(dev)
    net = DDP(model, device_ids=[local_rank] if cuda else None) if distributed else model
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    for epoch in range(a.epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(shard_x), shard_y)
        loss.backward()  # DDP all-reduces the gradients here
        opt.step()
    print(f"rank {rank}: loss {loss.item():.4f} after {a.epochs} epochs", flush=True)

    # The replicas must be equal: every rank's checksum of its parameters is compared.
    checksum = torch.stack([q.detach().double().sum() for q in model.parameters()]).sum().reshape(1).to(dev)
    ranks = [{"rank": rank, "node_rank": node_rank, "host": socket.gethostname()}]
    in_sync = True
    if distributed:
        sums = [torch.zeros_like(checksum) for _ in range(world)]
        dist.all_gather(sums, checksum)
        in_sync = max(s.item() for s in sums) - min(s.item() for s in sums) < 1e-6
        gathered = [None] * world
        dist.all_gather_object(gathered, ranks[0])
        ranks = gathered
    print(f"rank {rank}: replicas in sync: {in_sync}", flush=True)

    if rank == 0:
        with torch.no_grad():
            acc = (model(x.to(dev)).argmax(1) == y.to(dev)).float().mean().item()
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, os.path.join(a.out, "model.pt"))
        with open(os.path.join(a.out, "metrics.json"), "w") as f:
            json.dump({"version": 1, "world_size": world, "backend": backend if distributed else "none",
                       "ranks": ranks, "replicas_in_sync": in_sync, "loss": loss.item(),
                       "train_accuracy": acc, "epochs": a.epochs}, f)
        print(f"rank 0: checkpoint written, train accuracy {acc:.4f}", flush=True)
    if distributed:
        finish(rank, world, a.timeout)
    if not in_sync:
        raise SystemExit("replicas diverged")
    if distributed:
        # Every collective has returned on every rank (finish saw to it): leave without
        # the process group's teardown, which can wait for ever on a peer that already left.
        sys.stdout.flush()
        os._exit(0)


def finish(rank, world, timeout):
    """Leave together, through the rendezvous store rather than a last collective: a rank
    that leaves right after a gloo barrier can reset its connections while its peer still
    reads the barrier's last bytes, and that peer then waits for ever. Each rank says it is
    done; rank 0, which serves the store, waits for all of them, lets them go, and leaves
    last, once each has said it is leaving."""
    store = dist.distributed_c10d._get_default_store()
    wait = datetime.timedelta(seconds=timeout)
    store.set(f"ddp/done/{rank}", "1")
    if rank == 0:
        store.wait([f"ddp/done/{r}" for r in range(world)], wait)
        store.set("ddp/leave", "1")
        store.wait([f"ddp/left/{r}" for r in range(1, world)], wait)
    else:
        store.wait(["ddp/leave"], wait)
        store.set(f"ddp/left/{rank}", "1")


if __name__ == "__main__":
    main()
