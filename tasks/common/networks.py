"""Networks that several modalities build, as configs and builders: the CNN (images, and audio
spectrograms as one-channel images) and the recurrent net (sequences, audio frames, texts). They are
registered as components by the modalities that offer them; torch is imported only when one is built
(the torch modules are in :mod:`trainflow.tasks.common.layers`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainflow.errors import SpecError


class DenseHead(BaseModel):
    """The options of a network's last layers: a dense layer (the embedding), dropout, the output."""

    model_config = ConfigDict(extra="forbid")
    dense: int = Field(64, ge=1, description="Units of the dense layer before the output (the embedding)")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout before the output layer")


class CnnConfig(DenseHead):
    """Options of the ``cnn`` model; the defaults are the seed's network."""

    width: int = Field(32, ge=1, description="Filters of the first conv layer (doubling per block: 32, 64)")
    depth: int = Field(2, ge=1, le=6, description="Conv blocks (conv 3x3 -> activation -> max-pool 2)")
    batch_norm: bool = Field(False, description="Batch normalization after each conv layer")
    activation: Literal["relu", "gelu", "tanh", "sigmoid"] = "relu"
    # The seed uses unpadded ("valid") convs on 32x32 images; small images would shrink to nothing.
    padding: Literal["auto", "valid", "same"] = Field("auto", description="auto: valid for images of 16+ pixels, else same")


def cnn_shape(config: CnnConfig, h: int, w: int) -> tuple[str, list[bool], tuple[int, int]]:
    """The conv padding, whether each block pools, and the final feature-map size for ``h`` x ``w``
    images; SpecError when the blocks shrink the images to nothing."""
    padding = config.padding if config.padding != "auto" else ("valid" if min(h, w) >= 16 else "same")
    pools, size = [], (h, w)
    for _ in range(config.depth):
        if padding == "valid":
            size = (size[0] - 2, size[1] - 2)
        if min(size) < 1:
            raise SpecError(f"'model.depth' {config.depth} with {padding} padding shrinks {h}x{w} images to "
                            "nothing; lower model.depth or set model.padding: same.")
        pools.append(min(size) >= 2)
        size = (size[0] // 2, size[1] // 2) if pools[-1] else size
    return padding, pools, size


def cnn(config: CnnConfig, in_shape: tuple[int, int, int] = (3, 32, 32), n_classes: int = 10, **_: Any) -> Any:
    """The CNN for ``in_shape`` (channels, height, width) images: conv 32 3x3 -> pool -> Conv 64 3x3 -> pool -> Dense 64 -> Dense n_classes (the seed's CNN, at the defaults)."""
    from torch import nn

    act = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}[config.activation]
    c = in_shape[0]
    padding, pools, (h, w) = cnn_shape(config, in_shape[1], in_shape[2])
    layers: list[Any] = []
    for i, pool in enumerate(pools):
        out = config.width * 2**i
        layers.append(nn.Conv2d(c, out, 3, padding=0 if padding == "valid" else 1))
        layers += [nn.BatchNorm2d(out)] if config.batch_norm else []
        layers.append(act())
        layers += [nn.MaxPool2d(2)] if pool else []
        c = out
    layers += [nn.Flatten(), nn.Linear(c * h * w, config.dense), act()]
    layers += [nn.Dropout(config.dropout)] if config.dropout else []
    layers.append(nn.Linear(config.dense, n_classes))
    return nn.Sequential(*layers)


def pooled_first(model: Any) -> Any:
    """For prediction: ``model``, an ``nn.Sequential``, with each ReLU, tanh or sigmoid that a max-pool
    follows moved after that pool (the same modules, shared; ``model`` itself is left as it is). A
    non-decreasing function commutes with max, so the outputs are the same bits, and the activation
    runs on a quarter of the values (the seed's CNN over 10,000 CIFAR images: a quarter less CPU).
    Any other model is returned as it is."""
    from torch import nn

    if type(model) is not nn.Sequential:
        return model
    layers, swapped = list(model), False
    for i in range(len(layers) - 1):
        if type(layers[i]) in (nn.ReLU, nn.Tanh, nn.Sigmoid) and type(layers[i + 1]) is nn.MaxPool2d:
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
            swapped = True
    return nn.Sequential(*layers).train(model.training) if swapped else model


class RecurrentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(64, ge=1, description="Hidden units per direction")
    layers: int = Field(1, ge=1, description="Stacked recurrent layers")
    # Both directions see the whole series; classification gains, the cost is 2x the units.
    bidirectional: bool = Field(True, description="Run the recurrent layers in both directions")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout between layers and before the head")
    front: Literal["conv", "none"] = Field("conv", description="conv: a strided conv block before the RNN; none")
    front_channels: int = Field(32, ge=1, description="Filters of the conv front end")
    front_kernel: int = Field(7, ge=1, description="Kernel size of the conv front end")
    front_stride: int = Field(2, ge=1, description="Stride of the conv front end (shortens the series)")
    pool: Literal["auto", "meanmax", "mean", "max", "last"] = Field(
        "auto", description="How steps become one vector: auto = meanmax (classification/regression) or last "
                            "(forecasting); 'last' alone stays at chance on long series")
    packed: bool = Field(False, description="Run on packed sequences (padding never enters the RNN); "
                                            "preprocess.sequence.lengths: packed sets this")


def recurrent(cell: str) -> Any:
    """The builder of the recurrent net with ``cell`` (rnn, lstm, gru): ``build(config, in_channels=...,
    out_features=..., task=...)``."""

    def build(config: RecurrentConfig, *, in_channels: int, out_features: int, task: str = "classification",
              packed: bool | None = None, **_: Any) -> Any:
        from trainflow.tasks.common.layers import RecurrentNet

        pool = config.pool if config.pool != "auto" else ("last" if task == "forecasting" else "meanmax")
        return RecurrentNet(cell, in_channels, out_features, config.hidden, config.layers, config.bidirectional,
                            config.dropout, config.front, config.front_channels, config.front_kernel,
                            config.front_stride, pool, config.packed if packed is None else packed)

    build.__doc__ = {"lstm": "LSTM (conv front end, pooling over time) for sequences.",
                     "gru": "GRU (conv front end, pooling over time) for sequences.",
                     "rnn": "Elman RNN with tanh (conv front end, pooling over time) for sequences."}[cell]
    return build
