"""A tiny training run for the kill-and-resume test: ``python train_script.py CKPT_DIR OUT_FILE [KILL_AT]``.

Trains a small MLP on seeded random data with a checkpoint folder and writes the final weights to
OUT_FILE; with KILL_AT, the process SIGKILLs itself once epoch KILL_AT's checkpoint is written (the
point a watcher polling the checkpoint would kill it at, without sleeping to give it time). The
test imports :func:`train` to resume in its own process (one torch start-up fewer per case).
"""

import os
import signal
import sys

import torch
from safetensors.torch import save_file

from trainflow.tasks.common.training import TrainConfig, train_model

def data_and_model():
    g = torch.Generator().manual_seed(123)
    x = torch.randn(256, 8, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 3))
    return (x, y), model


CONFIG = TrainConfig(epochs=6, batch_size=32, lr=0.01, optimizer="sgd", schedule="step", step_size=2,
                     gamma=0.5, val_fraction=0.25, patience=10, num_threads=1, device="cpu")


def train(ckpt: str, kill_at: int = 0, log=print) -> dict:
    """Train (resuming from ``ckpt`` when it holds a checkpoint); returns the final weights. With
    ``kill_at``, the process dies by SIGKILL right after that epoch (on_epoch runs after the save)."""
    def on_epoch(row):
        if row["epoch"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    data, model = data_and_model()
    train_model(model, data, None, CONFIG, seed=3, checkpoint_dir=ckpt, sampler_weights=torch.linspace(1, 2, 256),
                on_epoch=on_epoch, log=log)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


if __name__ == "__main__":
    ckpt, out = sys.argv[1], sys.argv[2]
    save_file(train(ckpt, int(sys.argv[3]) if len(sys.argv) > 3 else 0), out)
