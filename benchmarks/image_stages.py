"""CPU and wall time of each image stage outside training, on a CIFAR-sized folder.

    python benchmarks/synth_cifar.py /tmp/cifar && python benchmarks/image_stages.py /tmp/cifar [--top 12] [--sort cumulative] [--threads 1]

Runs the image modality's stages of ``flows/specs/cifar10.yaml`` in this process, in order: load
(the ``cifar10`` loader and the stored ``.npz``), validate (Great Expectations and its Data Docs),
split, fit with the training loop's epochs left out (the network is built, the pixels prepared, the
model saved; what the loop itself does is measured by ``train_epoch_overhead.py``), evaluate (the
test images through the network, metrics, plots). The imports (torch, Great Expectations,
scikit-learn) are done first, so each figure is the stage's own work. CPU time is the process's
(all threads), which a busy machine distorts less than wall time. ``--top N`` prints each stage's N
most expensive functions (cProfile, own time). No Prefect: the task machinery is measured by the
other benchmarks. In a real run validate runs in a child process beside split.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cifar", help="a CIFAR-10 python-batches folder (benchmarks/synth_cifar.py writes one)")
    parser.add_argument("--top", type=int, default=0, help="print each stage's N most expensive functions")
    parser.add_argument("--sort", default="tottime", choices=["tottime", "cumulative"], help="order of --top's functions")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch's threads (default: its own); 1 on a busy machine: no pool spinning in the CPU figures")
    args = parser.parse_args()

    import torch  # (imports first: the stages' own work is what is measured)

    if args.threads:
        torch.set_num_threads(args.threads)

    from trainflow import modalities
    from trainflow.spec import load_spec
    from trainflow.tasks.common import load as loading
    from trainflow.tasks.common import plots, training
    from trainflow.tasks.common.validate import _gx
    from trainflow.tasks.image import modality as image

    _gx()
    plots.warm_up()  # as a run's warm-up does before evaluate (matplotlib: ~0.25 s of imports)
    modalities.get("image")
    spec = load_spec(REPO / "flows/specs/cifar10.yaml", [f"data.path={args.cifar}", "train.epochs=1",
                                                         "train.device=cpu", "validation.min_rows=10"])
    cache = tempfile.mkdtemp(prefix="image-stages-")

    def no_epochs(model, data, val, config, **options):  # the loop's epochs are not what this measures
        return training.TrainResult(history=[{"epoch": 1, "train_loss": 1.0}], best_epoch=1, epochs_run=1,
                                    stopped_early=False, device="cpu")

    training.train_model = no_epochs  # neural.fit imports it from the training module at call time
    rows = []

    def stage(name, fn):
        prof = cProfile.Profile() if args.top else None
        cpu, wall = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        out = fn()
        if prof:
            prof.disable()
        rows.append((name, time.process_time() - cpu, time.perf_counter() - wall))
        print(f"{name}: CPU {rows[-1][1]:.2f} s, wall {rows[-1][2]:.2f} s", flush=True)
        if prof:
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats(args.sort).print_stats(args.top)
            print(text.getvalue()[text.getvalue().find("ncalls"):])
        return out

    ref = stage("load", lambda: loading.load(spec.data, cache, "image"))
    stage("validate", lambda: image.validate(ref, spec, os.path.join(cache, "docs")))
    split = stage("split", lambda: image.split(ref, spec, cache))
    model = stage("fit without epochs", lambda: image.fit(split, spec.training_view(), cache))
    stage("evaluate", lambda: image.evaluate(model, split, spec, os.path.join(cache, "plots")))
    print("\n| stage | CPU s | wall s |\n|---|---|---|")
    for name, cpu, wall in rows:
        print(f"| {name} | {cpu:.2f} | {wall:.2f} |")
    print(f"| total | {sum(r[1] for r in rows):.2f} | {sum(r[2] for r in rows):.2f} |")
    print(f"load average after: {' / '.join(f'{x:.1f}' for x in os.getloadavg())}", file=sys.stderr)


if __name__ == "__main__":
    main()
