"""Kill a training process after an epoch, resume it, and compare with an uninterrupted run.

    python benchmarks/cuda_resume.py [--device cuda] [--n 4096] [--epochs 5] [--kill-after 2] [--workdir DIR]

For each mode (``deterministic``: torch.use_deterministic_algorithms + cuDNN deterministic, and
``default``: PyTorch's defaults) it starts an uninterrupted training process and one that sleeps after
each epoch, SIGKILLs the second once its checkpoint holds epoch ``--kill-after``, resumes it in a new
process, and compares the final weights with the uninterrupted run's: bit-identical, or the largest
difference. On a GPU the default mode may differ by float rounding (atomic adds in some backward
kernels); the deterministic mode must be bit-identical. Prints one line per mode; exit 1 when the
deterministic mode differs. The training: the seed's CNN, synthetic 32x32 images, random crops and
flips, a weighted sampler and a validation split, so every RNG stream must be restored.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def train(args: argparse.Namespace) -> None:
    """The child: one training run with a checkpoint folder; final weights to ``args.weights``."""
    import torch
    from safetensors.torch import save_file

    from trainflow.tasks.image.modality import ImagePreprocess, augmenter
    from trainflow.tasks.image.networks import CnnConfig, build_cnn
    from trainflow.tasks.common.training import TrainConfig, train_model

    if os.environ.get("TF_DETERMINISTIC") == "1":
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (args.n,), generator=g)
    x = torch.randn(args.n, 3, 32, 32, generator=g) + y[:, None, None, None] * 0.1
    torch.manual_seed(1)
    model = build_cnn(CnnConfig(batch_norm=True, dropout=0.2), (3, 32, 32), 10)
    config = TrainConfig(epochs=args.epochs, batch_size=128, val_fraction=0.1, patience=50, device=args.device,
                         schedule="cosine")
    train_model(model, (x, y), None, config, seed=3, checkpoint_dir=args.ckpt, sampler_weights=torch.linspace(1, 2, args.n),
                augment=augmenter(ImagePreprocess(flip=True, crop_padding=2)),
                on_epoch=lambda row: time.sleep(args.pause))
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, args.weights)


def _child(args: argparse.Namespace, ckpt: Path, weights: Path, pause: float, deterministic: bool) -> subprocess.Popen:
    env = {**os.environ, "TF_DETERMINISTIC": "1" if deterministic else "0", "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}
    cmd = [sys.executable, __file__, "--child", "--device", args.device, "--n", str(args.n), "--epochs",
           str(args.epochs), "--ckpt", str(ckpt), "--weights", str(weights), "--pause", str(pause)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def check(args: argparse.Namespace, work: Path, deterministic: bool) -> tuple[bool, str]:
    import torch
    from safetensors.torch import load_file

    from trainflow.tasks.common.training import CHECKPOINT, load_checkpoint

    mode = "deterministic" if deterministic else "default"
    t0 = time.perf_counter()
    full = _child(args, work / f"{mode}-full", work / f"{mode}-full.safetensors", 0.0, deterministic)
    killed = _child(args, work / f"{mode}-kill", work / f"{mode}-never.safetensors", args.pause, deterministic)
    ckpt = work / f"{mode}-kill" / CHECKPOINT
    deadline = time.time() + args.timeout
    while time.time() < deadline and killed.poll() is None:
        state = load_checkpoint(ckpt) if ckpt.exists() else None
        if state is not None and state["epoch"] >= args.kill_after:
            break
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(30)
    at = load_checkpoint(ckpt)["epoch"] if ckpt.exists() else 0
    if killed.returncode != -signal.SIGKILL or not 1 <= at < args.epochs:
        return False, f"{mode}: the process was not killed mid-run (exit {killed.returncode}, checkpoint epoch {at})"
    resumed = _child(args, work / f"{mode}-kill", work / f"{mode}-resumed.safetensors", 0.0, deterministic)
    log, _ = resumed.communicate(timeout=args.timeout)
    full_log, _ = full.communicate(timeout=args.timeout)
    if resumed.returncode or full.returncode:
        return False, f"{mode}: a training process failed:\n{full_log[-2000:]}\n{log[-2000:]}"
    if f"resuming from the checkpoint of epoch {at}" not in log:
        return False, f"{mode}: the resumed run did not resume from epoch {at}:\n{log[-2000:]}"
    a, b = load_file(work / f"{mode}-full.safetensors"), load_file(work / f"{mode}-resumed.safetensors")
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    verdict = "bit-identical" if same else f"differ: max |diff| {diff:.3g}"
    return same or not deterministic, (f"{mode}: killed after epoch {at} of {args.epochs}, resumed on {args.device}: "
                                       f"{verdict} ({time.perf_counter() - t0:.1f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--kill-after", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--modes", default="deterministic,default")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds the process to be killed sleeps after each epoch")
    args = parser.parse_args()
    if args.child:
        train(args)
        return 0
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cuda-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    ok = True
    for mode in args.modes.split(","):
        passed, line = check(args, work, mode == "deterministic")
        print(line, flush=True)
        ok = ok and passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
