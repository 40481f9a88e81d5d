"""Cost of one epoch through trainflow's training loop vs a plain PyTorch loop doing the same work.

    python benchmarks/train_epoch_overhead.py [--n 8192] [--repeats 5] [--threads N]

Both train the seed's CNN on the same random 32x32 RGB images with Adam, batch 128, the same
shuffled batches; the trainflow loop also logs, tracks accuracy and writes its checkpoint at the
end of the epoch. Prints the median epoch time of each and their ratio (target: <= 1.1).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from trainflow.tasks.image.modality import CnnConfig, build_cnn
from trainflow.tasks.common.training import TrainConfig, train_model


def plain_epoch(model, x, y, batch_size, seed):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    order = torch.randperm(len(x), generator=gen)
    for b in range(0, len(x), batch_size):
        idx = order[b:b + batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8192, help="images per epoch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.n, 3, 32, 32, generator=g), torch.randint(0, 10, (args.n,), generator=g)
    config = TrainConfig(epochs=1, batch_size=128, device="cpu")
    ours, plain = [], []
    for r in range(args.repeats):  # interleaved, so that machine load hits both alike
        torch.manual_seed(r)
        model = build_cnn(CnnConfig(), (3, 32, 32), 10)
        t0 = time.perf_counter()
        plain_epoch(model, x, y, 128, seed=r)
        plain.append(time.perf_counter() - t0)
        torch.manual_seed(r)
        model = build_cnn(CnnConfig(), (3, 32, 32), 10)
        with tempfile.TemporaryDirectory() as ckpt:
            t0 = time.perf_counter()
            train_model(model, (x, y), None, config, seed=r, checkpoint_dir=ckpt, log=lambda s: None)
            ours.append(time.perf_counter() - t0)
    a, b = statistics.median(ours), statistics.median(plain)
    print(f"plain PyTorch epoch: {b:.3f} s   trainflow epoch (with checkpoint): {a:.3f} s   "
          f"({torch.get_num_threads()} threads, {args.n} images)")
    print(f"ratio: {a / b:.3f}")


if __name__ == "__main__":
    main()
