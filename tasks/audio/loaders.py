"""Audio loaders: ``audio_folder`` (labels from subfolders), ``audio_pattern`` (labels from a named
group of a filename regex, as FSDD's ``{digit}_{speaker}_{index}.wav``) and ``audio_manifest`` (a CSV
naming each file, its label and optionally its split).

Every loader returns :class:`Clips`: mono waveforms at ``data.sample_rate`` (stereo is mixed down,
other rates resampled with soxr through librosa), the labels, the file names, what each file held
before (rate, channels, duration) and a fixed test split where the data has one (a filename group
and its test values, or a manifest column). Files are read with ``soundfile``; nothing is downloaded.
A missing, zero-byte, corrupt or non-audio file is left out and reported (``data.unreadable: skip``,
the default; validation bounds their share), or with ``data.unreadable: error`` a DataError naming it;
a file name that does not match the pattern is one too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainflow.errors import DataError, did_you_mean
from trainflow.files import open_regular, path_problem
from trainflow.registry import component
from trainflow.tasks.common.load import files_with_suffix as audio_files
from trainflow.tasks.common.load import existing_folder, pattern_groups
from trainflow.tasks.common.manifest import ManifestColumns, manifest_files, manifest_root, read_manifest

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")


@dataclass
class Clips:
    """Decoded clips: ``waves[i]`` is float32 mono at ``sample_rate``; ``info[i]`` what the file held."""

    waves: list[np.ndarray]
    labels: list[str] | None
    files: list[str]
    info: list[dict[str, Any]]  # original sample_rate, channels, duration (s); readable, error
    sample_rate: int
    source: str
    is_test: np.ndarray | None = None
    keys: np.ndarray | None = None  # the values of the spec's split column or group (tasks/common/holdout.py)
    groups: dict[str, list[str]] = field(default_factory=dict)  # named groups of the filename pattern
    label_matrix: np.ndarray | None = None  # multi-label: [clips, labels] of 0/1 (then ``labels`` is None)
    label_names: list[str] = field(default_factory=list)  # the columns of ``label_matrix``


class AudioOptions(BaseModel):
    """Options every audio loader shares."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., description="Folder of audio files (manifest: the CSV file)")
    # 16 kHz is the usual rate of speech models; FSDD's 8 kHz demo sets its own.
    sample_rate: int = Field(16000, ge=1000, le=192000, description="Rate every clip is resampled to (Hz)")
    suffixes: list[str] = Field(list(AUDIO_SUFFIXES), min_length=1, description="File name endings read as audio")
    # skip: a few broken files in a real corpus should not block it (images and text tolerate the same share)
    unreadable: Literal["error", "skip"] = Field(
        "skip", description="A file soundfile cannot decode: skip it (reported; validation counts it against "
                            "audio_validation.max_unreadable_share) or error (exit 3, the strict setting)")


class FolderOptions(AudioOptions):
    pattern: str | None = Field(None, description="Regex with named groups matched to each file name (the spec's "
                                                  "split.column / split.group may name one)")
    test_group: str | None = Field(None, description="Deprecated: use 'split: {column: <group>, test: [...]}'. "
                                                     "Named group of 'pattern' that decides the fixed test split")
    test_values: list[str] = Field([], description="Deprecated with test_group: values that make a clip a test clip")

    @field_validator("test_values", mode="before")
    @classmethod
    def _as_text(cls, v: Any) -> Any:
        return [str(x) for x in v] if isinstance(v, list) else v

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression: {exc}") from None
        return v


class PatternOptions(FolderOptions):
    pattern: str = Field(..., description="Regex with a named group for the label, matched to each file name")
    label_group: str = Field("label", description="The named group of 'pattern' that holds the label")
    recursive: bool = Field(False, description="Also read files in subfolders")


class ManifestOptions(ManifestColumns, AudioOptions):
    path: str = Field(..., description="CSV file with one row per clip")


# ---------------------------------------------------------------- reading one clip


#: samples (frames x channels) decoded per clip at most: 64M float32 = 256 MB, ~70 minutes at 16 kHz
MAX_CLIP_SAMPLES = 1 << 26


def clip_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an audio file before decoding it (missing, not a file, zero bytes)."""
    problem = path_problem(path)
    if problem:
        return problem
    if path.stat().st_size == 0:
        return "is empty (zero bytes)"
    return None


def read_clip(path: str | Path, sample_rate: int) -> tuple[np.ndarray, dict[str, Any]]:
    """One file as float32 mono at ``sample_rate`` and what it held (rate, channels, duration).

    Raises DataError naming the file when it is missing, empty, or not audio soundfile can decode."""
    import soundfile as sf

    path = Path(path)
    problem = clip_problem(path)
    if problem:
        raise DataError(f"The audio file '{path}' {problem}.")
    try:
        # decoded from the descriptor that was checked, so a file swapped after the check is never read
        with open_regular(path, "audio file") as fh, sf.SoundFile(fh) as header:
            if header.frames * header.channels > MAX_CLIP_SAMPLES:  # checked from the header, before decoding
                raise DataError(f"The audio file '{path}' declares {header.frames:,} frames x {header.channels} "
                                f"channel(s), more than the {MAX_CLIP_SAMPLES:,} samples trainflow decodes per "
                                f"clip (~{MAX_CLIP_SAMPLES * 4 // 2**20} MB); split it into shorter clips.")
            data, rate = header.read(dtype="float32", always_2d=True), header.samplerate
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        # libsndfile names the open descriptor ('Error opening <_io.BufferedReader name=3>: ...'), not the file
        why = re.sub(r"^Error opening <[^>]*>: ", "", str(exc)).rstrip(".")
        raise DataError(f"The audio file '{path}' is not audio soundfile can decode (WAV, FLAC, OGG, AIFF): "
                        f"{why}.") from None
    bad = ~np.isfinite(data)
    if bad.any():  # a float WAV can store NaN or inf; features and training would turn them into NaN losses
        raise DataError(f"The audio file '{path}' holds {int(bad.sum())} sample(s) that are not finite numbers "
                        f"(NaN or infinite; the first at sample {int(np.flatnonzero(bad.any(axis=1))[0])}).")
    info = {"sample_rate": int(rate), "channels": int(data.shape[1]), "duration": len(data) / rate}
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]  # stereo mixed down
    if rate != sample_rate and len(wave):
        import librosa

        wave = librosa.resample(wave, orig_sr=rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(wave, dtype=np.float32), info


def read_clips(paths: list[Path], root: Path, sample_rate: int, unreadable: str = "error"
               ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Every file decoded by :func:`read_clip`; with ``unreadable='skip'`` a bad file gives an empty
    wave and ``readable: False`` with the reason instead of an error."""
    waves, infos = [], []
    for p in paths:
        try:
            wave, info = read_clip(p, sample_rate)
            info |= {"readable": True, "error": ""}
        except DataError as exc:
            if unreadable == "error":
                raise DataError(f"{exc} Fix or remove it, or set data.unreadable: skip.") from None
            wave, info = np.zeros(0, np.float32), {"sample_rate": 0, "channels": 0, "duration": 0.0,
                                                   "readable": False, "error": str(exc)}
        waves.append(wave)
        infos.append(info)
    return waves, infos


# ---------------------------------------------------------------- listing files


def audio_root(path: str) -> Path:
    """The audio folder ``data.path`` names; DataError when it is not one."""
    return existing_folder(path, "audio folder")


def split_keys(groups: dict[str, list[str]], split: Any, options: FolderOptions) -> np.ndarray | None:
    """The values of the named group of ``data.pattern`` that the spec's split names (None without one)."""
    if split is None or not split.key:
        return None
    from trainflow.tasks.common import holdout

    if split.key not in groups:
        raise DataError(f"'{holdout.option(split)}' is {split.key!r}, which is not a named group of data.pattern "
                        f"{options.pattern!r}{did_you_mean(split.key, groups)}; its groups are: "
                        f"{', '.join(groups) or 'none (data.pattern not set)'}.")
    return np.asarray(groups[split.key], dtype=str)


def test_mask(groups: dict[str, list[str]], options: FolderOptions) -> np.ndarray | None:
    """The fixed test split from ``test_group``/``test_values`` (None without one; deprecated)."""
    if not options.test_group:
        return None
    from trainflow.alerts import warn

    values = ", ".join(options.test_values)
    warn(f"data.test_group / data.test_values are deprecated and go in the next release: write "
         f"'split: {{column: {options.test_group}, test: [{values}]}}' in the spec instead.")
    if options.test_group not in groups:
        raise DataError(f"data.test_group '{options.test_group}' is not a named group of data.pattern "
                        f"{options.pattern!r}{did_you_mean(options.test_group, groups)}.")
    if not options.test_values:
        raise DataError("data.test_group is set but data.test_values is empty: list the values of test clips.")
    return np.isin(np.asarray(groups[options.test_group], dtype=str), options.test_values)


def _clips(files: list[Path], root: Path, labels: list[str] | None, options: AudioOptions,
           groups: dict[str, list[str]] | None = None, is_test: np.ndarray | None = None) -> Clips:
    if not files:
        raise DataError(f"'{root}' holds no audio files (expected names ending in {', '.join(options.suffixes)}; "
                        "data.path, data.suffixes).")
    waves, info = read_clips(files, root, options.sample_rate, options.unreadable)
    rel = [str(f.relative_to(root)) if f.is_relative_to(root) else str(f) for f in files]
    return Clips(waves=waves, labels=labels, files=rel, info=info, sample_rate=options.sample_rate,
                 source=str(options.path), is_test=is_test, groups=groups or {})


# ---------------------------------------------------------------- the loaders


@component("loader", "audio_folder", FolderOptions, modality="audio", split_key=True)
def load_audio_folder(config: FolderOptions, split: Any = None) -> Clips:
    """A folder with one subfolder of audio files per class; the subfolder names are the labels."""
    root = audio_root(config.path)
    files, labels = [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        found = audio_files(sub, config.suffixes, recursive=True)
        files += found
        labels += [sub.name] * len(found)
    if not files:
        raise DataError(f"The audio folder '{root}' holds no class subfolders with audio files (data.path): "
                        f"expected {root}/<class>/<clip>{config.suffixes[0]}.")
    groups = pattern_groups(files, config.pattern, root, ()) if config.pattern else {}
    clips = _clips(files, root, labels, config, groups, test_mask(groups, config))
    clips.keys = split_keys(groups, split, config)
    return clips


@component("loader", "audio_pattern", PatternOptions, modality="audio", split_key=True)
def load_audio_pattern(config: PatternOptions, split: Any = None) -> Clips:
    """A folder of audio files whose names give the label (a named group of a regex)."""
    root = audio_root(config.path)
    files = audio_files(root, config.suffixes, config.recursive)
    if not files:
        return _clips(files, root, None, config)  # the no-files error
    groups = pattern_groups(files, config.pattern, root, (config.label_group,))
    clips = _clips(files, root, groups[config.label_group], config, groups, test_mask(groups, config))
    clips.keys = split_keys(groups, split, config)
    return clips


@component("loader", "audio_manifest", ManifestOptions, modality="audio", source_files=manifest_files,
           split_key=True)
def load_audio_manifest(config: ManifestOptions, split: Any = None) -> Clips:
    """A CSV listing each clip's file, its label (multi-label: 0/1 columns or a delimited label) and
    optionally the spec's split column or group."""
    m = read_manifest(config, "audio file", clip_problem, strict=config.unreadable == "error", split=split)
    root = manifest_root(config, m.path)
    clips = _clips(m.files, root, m.labels, config, is_test=m.is_test)
    clips.keys = m.keys
    clips.files = m.names
    clips.label_matrix, clips.label_names = m.label_matrix, m.label_names
    return clips
