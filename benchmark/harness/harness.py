#!/usr/bin/env python3
"""gpunode benchmark harness: runs a plan of DeepBench problems in PyTorch.

The protocol (arguments in, one JSON object per line out) is documented in PROTOCOL.md
next to this file. The node, not this script, turns times into TFLOPS and scores.

    harness.py --plan PLAN.json [--device cpu|cuda] [--gpus 0,1] [--out FILE]
    harness.py --probe [--device cpu|cuda]

Runs on GPUs (--device cuda: matmul in fp32/tf32/fp16/bf16, conv2d through cuDNN,
LSTM/GRU/RNN through cuDNN, all-reduce over NCCL across the GPUs) and on CPU (--device
cpu, what CI runs on Debian's python3-torch).
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

PROTOCOL = 1
HARNESS = "gpunode-harness/1"


OUT = []  # extra line sinks (--out)


def emit(obj):
    line = json.dumps(obj, separators=(",", ":")) + "\n"
    for f in [sys.stdout] + OUT:
        f.write(line)
        f.flush()


def fail(msg):
    emit({"type": "error", "error": msg})
    sys.exit(2)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hello(torch, device, gpus):
    devices = []
    h = {"type": "hello", "protocol": PROTOCOL, "harness": HARNESS, "torch": torch.__version__,
         "python": platform.python_version(), "device": device, "cpu": cpu_name(),
         "cpu_count": os.cpu_count() or 1, "cuda": "", "cudnn": "", "nccl": "", "driver": ""}
    if device == "cuda":
        h["cuda"] = torch.version.cuda or ""
        h["cudnn"] = str(torch.backends.cudnn.version() or "")
        try:
            h["nccl"] = ".".join(str(x) for x in torch.cuda.nccl.version())
        except Exception:
            pass
        try:
            import subprocess
            h["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                         capture_output=True, text=True, timeout=20).stdout.split("\n")[0].strip()
        except Exception:
            pass
        for i in gpus:
            p = torch.cuda.get_device_properties(i)
            uuid = str(getattr(p, "uuid", "") or "")
            if uuid and not uuid.startswith("GPU-"):
                uuid = "GPU-" + uuid
            devices.append({"id": "gpu%d" % i, "index": i, "name": p.name, "uuid": uuid,
                            "memory_mb": p.total_memory // (1 << 20)})
    else:
        devices.append({"id": "cpu", "index": 0, "name": h["cpu"], "uuid": "", "memory_mb": 0})
    h["devices"] = devices
    emit(h)
    return devices



def dtype_of(torch, prec):
    return {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[prec]


def unsupported(device, prob):
    prec, cls = prob["precision"], prob["class"]
    if cls == "allreduce":
        if device != "cuda":
            return "all-reduce runs over NCCL across CUDA devices; not on cpu"
        return None
    if device == "cpu":
        if prec in ("tf32", "fp16"):
            return "%s needs a CUDA device" % prec
        if prec == "bf16" and cls != "gemm":
            return "bf16 %s is not run on cpu" % cls
    return None


def build(torch, dev, prob):
    """Returns a closure running the problem once on dev."""
    prec = prob["precision"]
    dt = dtype_of(torch, prec)
    if dev.type == "cuda":
        tf32 = prec == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
    cls = prob["class"]
    if cls == "gemm":
        g = prob["gemm"]
        m, n, k = g["m"], g["n"], g["k"]
        # Column-major C(m×n) = op(A)·op(B) is row-major Cᵀ(n×m) = op(B)ᵀ·op(A)ᵀ.
        a = torch.randn((m, k) if g["trans_a"] else (k, m), device=dev, dtype=dt)
        b = torch.randn((k, n) if g["trans_b"] else (n, k), device=dev, dtype=dt)
        # A untransposed is k×m in row-major memory, which is op(A)ᵀ already; likewise B.
        at = a.t() if g["trans_a"] else a
        bt = b.t() if g["trans_b"] else b
        out = torch.empty((n, m), device=dev, dtype=dt)
        return lambda: torch.matmul(bt, at, out=out)
    if cls == "conv":
        c = prob["conv"]
        x = torch.randn((c["n"], c["c"], c["h"], c["w"]), device=dev, dtype=dt)
        w = torch.randn((c["k"], c["c"], c["r"], c["s"]), device=dev, dtype=dt)
        F = torch.nn.functional
        stride, pad = (c["stride_h"], c["stride_w"]), (c["pad_h"], c["pad_w"])
        return lambda: F.conv2d(x, w, stride=stride, padding=pad)
    if cls == "rnn":
        r = prob["rnn"]
        h, bsz, steps = r["hidden"], r["batch"], r["steps"]
        mod = {"vanilla": lambda: torch.nn.RNN(h, h, bias=False, nonlinearity="tanh"),
               "lstm": lambda: torch.nn.LSTM(h, h, bias=False),
               "gru": lambda: torch.nn.GRU(h, h, bias=False)}[r["cell"]]()
        mod = mod.to(device=dev, dtype=dt)
        x = torch.randn((steps, bsz, h), device=dev, dtype=dt)
        return lambda: mod(x)
    raise ValueError("unknown class %r" % cls)


# A timed repeat runs the problem enough times back to back to last at least this long:
# a µs-scale kernel timed one launch at a time measures the launch and the host's
# synchronisation, not the device.
MIN_BATCH_MS = 1.0
MAX_BATCH = 1 << 16


class HostClock:
    """Wall time around a batch, after the device finished it: the CPU's clock."""

    def __init__(self, sync=lambda: None):
        self.sync = sync

    def time(self, fn, n):
        self.sync()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        self.sync()
        return (time.perf_counter() - t0) * 1e3


class CudaClock:
    """CUDA events recorded on the stream around a batch: device time, without the host's
    launch and synchronisation latency."""

    def __init__(self, torch, dev):
        self.torch, self.dev = torch, dev

    def time(self, fn, n):
        cuda = self.torch.cuda
        with cuda.device(self.dev):
            start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)


def batch_size(one_ms, min_batch_ms=MIN_BATCH_MS, cap=MAX_BATCH):
    """How many launches make a batch of at least min_batch_ms, from one launch's time."""
    if not one_ms > 0:
        return cap
    return max(1, min(cap, int(math.ceil(min_batch_ms / one_ms))))


def timed_repeats(clock, fn, timing):
    """Times the problem in batches per the plan's timing: returns the time per launch of
    each batch (ms) and the batch size. The repeat count and the minimum total time apply
    to batches, as the protocol's repeats do."""
    for _ in range(timing["warmup"]):
        fn()
    one = clock.time(fn, 1)
    batch = batch_size(one)
    times, total = [], 0.0
    while len(times) < timing["max_repeats"] and (len(times) < timing["min_repeats"] or total < timing["min_time_ms"]):
        ms = clock.time(fn, batch)
        times.append(ms / batch)
        total += ms
    return times, batch


def measure(torch, dev, fn, timing):
    if dev is not None and dev.type == "cuda":
        clock = CudaClock(torch, dev)
    else:
        clock = HostClock()
    return timed_repeats(clock, fn, timing)


def allreduce(torch, gpus, prob, timing):
    a = prob["allreduce"]
    if a["workers"] != len(gpus):
        raise ValueError("all-reduce planned across %d workers, have %d GPUs" % (a["workers"], len(gpus)))
    import torch.cuda.nccl as nccl
    bufs = [torch.zeros(a["floats"], device="cuda:%d" % i, dtype=torch.float32) for i in gpus]

    def run():
        nccl.all_reduce(bufs)

    def sync():
        for i in gpus:
            torch.cuda.synchronize(i)

    # Across several devices no one stream's events time the whole: wall time around
    # batches, every device synchronised.
    return timed_repeats(HostClock(sync), run, timing)


def result(index, device, timing, times, batch):
    times = sorted(times)
    return {"type": "result", "index": index, "device": device, "warmup": timing["warmup"],
            "repeats": len(times), "batch": batch, "min_ms": times[0],
            "median_ms": statistics.median(times), "max_ms": times[-1]}


# The challenge prover (PROTOCOL.md, "Challenge protocol"): A and B from the challenger's
# seed with the counter-based generator, C = A·B on the device, C's rows written for the
# node, which commits to them and answers the challenger.

M32 = 0xFFFFFFFF
PRNG_DOMAIN = b"gpunode/challenge/1 prng"
INPUT_BITS = {"fp32": 24, "tf32": 11, "fp16": 11, "bf16": 8}


def stream_key(seed, tag, t):
    import hashlib
    import struct
    k = hashlib.sha256(PRNG_DOMAIN + seed + tag + struct.pack("<I", t)).digest()
    return int.from_bytes(k[0:4], "little"), int.from_bytes(k[4:8], "little")


def mul32(x, c):
    """x·c mod 2³² on int64 tensors with 0 ≤ x < 2³², in 16-bit halves of c: no product
    exceeds 2⁴⁹, so nothing overflows int64."""
    return ((((x * (c >> 16)) & 0xFFFF) << 16) + x * (c & 0xFFFF)) & M32


def lowbias32(x):
    x = x ^ (x >> 16)
    x = mul32(x, 0x7feb352d)
    x = x ^ (x >> 15)
    x = mul32(x, 0x846ca68b)
    return x ^ (x >> 16)


def challenge_matrix(torch, dev, seed, tag, t, n, bits, chunk=1 << 22):
    """Matrix tag (b"A" or b"B") of product t: n×n float32, row-major."""
    k0, k1 = stream_key(seed, tag, t)
    out = torch.empty(n * n, dtype=torch.float32, device=dev)
    for s in range(0, n * n, chunk):
        e = min(n * n, s + chunk)
        i = torch.arange(s, e, dtype=torch.int64, device=dev)
        w = lowbias32(lowbias32((i + k0) & M32) ^ k1)
        out[s:e] = ((w >> (32 - bits)) - (1 << (bits - 1))).to(torch.float32) * (2.0 ** (1 - bits))
    return out.view(n, n)


def run_challenge(torch, dev, ch, out_dir, hash_inputs):
    import hashlib
    seed = bytes.fromhex(ch["seed"])
    n, prec, count = ch["n"], ch["precision"], ch["count"]
    if len(seed) != 32 or prec not in INPUT_BITS or not 1 <= count <= 8 or n < 16 or n & (n - 1):
        raise ValueError("bad challenge %r" % ch)
    bits = INPUT_BITS[prec]
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = prec == "tf32"
        # Sums in fp32 as the tolerances assume (PROTOCOL.md), not in 16 bits.
        for flag in ("allow_fp16_reduced_precision_reduction", "allow_bf16_reduced_precision_reduction"):
            if hasattr(torch.backends.cuda.matmul, flag):
                setattr(torch.backends.cuda.matmul, flag, False)
    elif prec != "fp32":
        raise ValueError("%s challenges need a CUDA device" % prec)
    dt = dtype_of(torch, prec)
    products = []
    for t in range(count):
        t0 = time.perf_counter()
        a = challenge_matrix(torch, dev, seed, b"A", t, n, bits)
        b = challenge_matrix(torch, dev, seed, b"B", t, n, bits)
        c = torch.matmul(a.to(dt), b.to(dt)).to(torch.float32)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        ms = (time.perf_counter() - t0) * 1e3
        name = "c%d.bin" % t
        # Row-major, little-endian fp32: what the node hashes into the commitment.
        c.cpu().contiguous().numpy().astype("<f4").tofile(os.path.join(out_dir, name))
        p = {"t": t, "file": name, "ms": ms}
        if hash_inputs:
            p["a_sha256"] = hashlib.sha256(a.cpu().contiguous().numpy().astype("<f4").tobytes()).hexdigest()
            p["b_sha256"] = hashlib.sha256(b.cpu().contiguous().numpy().astype("<f4").tobytes()).hexdigest()
        products.append(p)
    emit({"type": "challenge", "products": products})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plan", help="plan JSON file (benchmark.Plan)")
    ap.add_argument("--probe", action="store_true", help="print hello and done, run nothing")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    ap.add_argument("--gpus", default="", help="comma-separated CUDA device indexes (default: all)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for --device cpu (default: torch's)")
    ap.add_argument("--challenge", default="", help="challenge JSON file: compute its products (PROTOCOL.md)")
    ap.add_argument("--out-dir", default="/out", help="where --challenge writes C's rows")
    ap.add_argument("--hash-inputs", action="store_true", help="with --challenge, also print SHA-256 of A and B")
    ap.add_argument("--out", default="", help="also write the lines to this file (for runtimes that mix stdout and stderr)")
    args = ap.parse_args()
    if args.out:
        OUT.append(open(args.out, "w", buffering=1))
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        fail("import torch: %s" % e)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    gpus = []
    if args.device == "cuda":
        if not torch.cuda.is_available():
            fail("--device cuda: torch sees no CUDA device (is the container started with the GPUs attached?)")
        gpus = [int(x) for x in args.gpus.split(",") if x.strip()] or list(range(torch.cuda.device_count()))
    devices = hello(torch, args.device, gpus)
    if args.probe:
        emit({"type": "done", "results": 0})
        return
    if args.challenge:
        try:
            with open(args.challenge) as f:
                ch = json.load(f)
            dev = torch.device("cuda:%d" % gpus[0]) if args.device == "cuda" else torch.device("cpu")
            with torch.no_grad():
                run_challenge(torch, dev, ch, args.out_dir, args.hash_inputs)
        except Exception as e:  # noqa: BLE001
            fail("challenge: %s: %s" % (type(e).__name__, e))
        return
    if not args.plan:
        fail("--plan is required unless --probe or --challenge")
    try:
        with open(args.plan) as f:
            plan = json.load(f)
        timing, problems = plan["timing"], plan["problems"]
    except Exception as e:  # noqa: BLE001
        fail("read plan %s: %s" % (args.plan, e))
    count = 0
    torch.manual_seed(1)
    with torch.no_grad():
        for i, prob in enumerate(problems):
            per_device = prob["class"] != "allreduce"
            targets = [d["id"] for d in devices] if per_device else ["rig"]
            why = unsupported(args.device, prob)
            for j, dev_id in enumerate(targets):
                count += 1
                if why:
                    emit({"type": "skipped", "index": i, "device": dev_id, "reason": why})
                    continue
                try:
                    if per_device:
                        dev = torch.device("cuda:%d" % gpus[j]) if args.device == "cuda" else torch.device("cpu")
                        times, batch = measure(torch, dev, build(torch, dev, prob), timing)
                    else:
                        times, batch = allreduce(torch, gpus, prob, timing)
                    emit(result(i, dev_id, timing, times, batch))
                except Exception as e:  # noqa: BLE001 - e.g. out of memory, unsupported dtype
                    emit({"type": "skipped", "index": i, "device": dev_id,
                          "reason": ("%s: %s" % (type(e).__name__, e)).split("\n")[0][:300]})
                    if args.device == "cuda":
                        torch.cuda.empty_cache()
    emit({"type": "done", "results": count})


if __name__ == "__main__":
    main()
