"""Audio for new speakers: per-clip normalisation and the warping of training batches (no server)."""

from __future__ import annotations

import numpy as np
import pytest

from trainflow.tasks.audio.features import (AudioFeatures, FrequencyNormalizer, normalized, per_clip, spec_augmenter,
                                            warper)


def test_per_clip_removes_each_clips_colouring_over_its_voiced_frames():
    rng = np.random.default_rng(0)
    voice = rng.normal(size=(1, 8, 30)).astype(np.float32)
    louder_brighter = voice * 2.0 + np.linspace(0, 5, 8, dtype=np.float32)[None, :, None]  # another voice/microphone
    x = np.concatenate([voice, louder_brighter])
    x[:, :, 20:] = -40.0  # silence padding: far below the clip's loudest frames
    out = per_clip(x)
    np.testing.assert_allclose(out[0, :, :20], out[1, :, :20], atol=1e-4)  # the same utterance once normalised
    np.testing.assert_allclose(out[:, :, :20].mean(axis=2), 0, atol=1e-5)  # over its voiced frames only
    np.testing.assert_allclose(out[:, :, :20].std(axis=2), 1, atol=1e-4)


def test_saved_state_repeats_the_per_clip_step_at_predict_time():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 4, 10)).astype(np.float32) * 3 + 1
    norm = FrequencyNormalizer("per_clip").fit(per_clip(x))
    again = FrequencyNormalizer.from_state(norm.state())
    np.testing.assert_array_equal(normalized(x, None, again), norm.transform(per_clip(x)))
    plain = FrequencyNormalizer("per_frequency").fit(x)
    np.testing.assert_array_equal(normalized(x, None, plain), plain.transform(x))


def test_warping_is_off_by_default_and_keeps_the_batch_shape():
    torch = pytest.importorskip("torch")
    assert warper(AudioFeatures()) is None
    cfg = AudioFeatures(freq_warp=0.2, time_stretch=0.2, time_shift=3, freq_masks=0, time_masks=0)
    torch.manual_seed(0)
    x = torch.randn(16, 32, 41)
    out = spec_augmenter(cfg)(x)
    assert out.shape == x.shape and not torch.allclose(out, x)
    # no warp, no stretch, no shift: the grid reads every point where it is
    same = warper(AudioFeatures(time_shift=0, freq_warp=1e-9))(x)
    torch.testing.assert_close(same, x, atol=1e-4, rtol=0)


def test_a_pure_shift_moves_frames_and_fills_with_the_mean():
    torch = pytest.importorskip("torch")
    x = torch.arange(10, dtype=torch.float32).repeat(2, 3, 1)  # [2, 3, 10]: frame t holds t
    torch.manual_seed(3)
    out = warper(AudioFeatures(time_shift=2))(x)
    for b in range(2):
        row = out[b, 0]
        d = int(round(float(row[5] - x[b, 0, 5])))  # frame t now holds what frame t + d held
        assert abs(d) <= 2
        inside = slice(max(-d, 0), min(10, 10 - d))
        torch.testing.assert_close(row[inside], x[b, 0, inside] + d)
        outside = torch.ones(10, dtype=torch.bool)
        outside[inside] = False
        assert torch.all(row[outside] == 0)  # read from beyond the clip: the training mean
