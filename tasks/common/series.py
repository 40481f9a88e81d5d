"""The spec's ``preprocess.sequence`` section, which the sequence and forecast modalities share."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SequencePreprocess(BaseModel):
    """The spec's ``preprocess.sequence`` section (sequence and forecasting pipelines)."""

    model_config = ConfigDict(extra="forbid")
    # Per-series z-normalization is the UCR archive's convention: classes differ by shape, not level.
    # auto: per_series (the UCR convention) unless the training split says level and scale matter.
    normalize: Literal["auto", "per_series", "global", "none"] = Field(
        "auto", description="auto: chosen on the training split (minirocket, rocket, multirocket: the better leave-one-out "
                            "accuracy of per_series and global; other models: global when level and scale alone "
                            "separate the classes, else per_series); per_series: each series and channel to "
                            "mean 0, std 1; global: one mean/std per channel from the training split; none")
    missing: Literal["linear", "ffill", "bfill", "mask"] = Field(
        "linear", description="Missing values: interpolate in time (linear | ffill | bfill), or mask: zero them "
                              "and add a 0/1 'observed' channel per channel")
    lengths: Literal["pad", "packed"] = Field(
        "pad", description="Unequal lengths: pad with a mask of real steps, or packed sequences (recurrent models)")
