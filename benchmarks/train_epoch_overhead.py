"""Cost of one epoch through trainflow's training loop vs a plain PyTorch loop doing the same work.

    python benchmarks/train_epoch_overhead.py [--n 8192] [--repeats 5] [--threads N] [--device cpu|cuda]
                                             [--precision fp32|bf16] [--channels-last]

Both train the seed's CNN on the same random 32x32 RGB images with Adam, batch 128, the same
shuffled batches, with the data already on the device; the trainflow loop also logs, tracks loss and
accuracy and writes its checkpoint at the end of the epoch. ``--precision bf16`` and
``--channels-last`` apply to both loops. One untimed epoch of each warms up (cuDNN, allocator) first.
Prints the median epoch time of each, images per second and their ratio (target: <= 1.05, i.e. the
loop at >= 0.95x the plain loop's throughput), in wall time and in CPU time of this process (on a
busy machine the CPU time is the steadier figure; a checkpoint's wait for the disk is wall time only).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from trainflow.tasks.image.networks import CnnConfig, build_cnn
from trainflow.tasks.common.training import TrainConfig, train_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epoch(model, x, y, batch_size, seed, precision="fp32", channels_last=False):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    order = torch.randperm(len(x), generator=gen).to(x.device)
    cast = (torch.autocast(x.device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())
    for b in range(0, len(x), batch_size):
        idx = order[b:b + batch_size]
        xb = x[idx].contiguous(memory_format=torch.channels_last) if channels_last else x[idx]
        with cast:
            out = model(xb)
        loss = F.cross_entropy(out.float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192, help="images per epoch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.n, 3, 32, 32, generator=g), torch.randint(0, 10, (args.n,), generator=g)
    x, y = x.to(device), y.to(device)
    config = TrainConfig(epochs=1, batch_size=args.batch_size, device=args.device, precision=args.precision,
                         channels_last=args.channels_last)

    def fresh(seed):
        torch.manual_seed(seed)
        model = build_cnn(CnnConfig(), (3, 32, 32), 10).to(device)
        return model.to(memory_format=torch.channels_last) if args.channels_last else model

    def plain(seed):
        model = fresh(seed)
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        plain_epoch(model, x, y, args.batch_size, seed, args.precision, args.channels_last)
        _sync(device)
        return time.perf_counter() - t0, time.process_time() - c0

    def ours(seed):
        model = fresh(seed)
        with tempfile.TemporaryDirectory() as ckpt:
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            train_model(model, (x, y), None, config, seed=seed, checkpoint_dir=ckpt, log=lambda s: None)
            _sync(device)
            return time.perf_counter() - t0, time.process_time() - c0

    plain(0), ours(0)  # warm-up: cuDNN, the allocator, torch's lazy imports
    a_times, b_times = [], []
    for r in range(1, args.repeats + 1):  # interleaved, so that machine load hits both alike
        b_times.append(plain(r))
        a_times.append(ours(r))
    a, b = (statistics.median(t for t, _ in a_times), statistics.median(t for t, _ in b_times))
    a_cpu, b_cpu = (statistics.median(c for _, c in a_times), statistics.median(c for _, c in b_times))
    where = f"{torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"plain PyTorch epoch: {b:.3f} s ({args.n / b:,.0f} img/s)   trainflow epoch (with checkpoint): {a:.3f} s "
          f"({args.n / a:,.0f} img/s)   [{args.device}, {where}, {args.precision}"
          f"{', channels_last' if args.channels_last else ''}, {args.n} images, batch {args.batch_size}]")
    print(f"ratio: {a / b:.3f}   throughput vs plain: {b / a:.3f}x   "
          f"CPU s per epoch plain {b_cpu:.3f} / trainflow {a_cpu:.3f}: {b_cpu / a_cpu:.3f}x")


if __name__ == "__main__":
    main()
