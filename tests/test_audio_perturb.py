"""Voice perturbation of training clips (speed, VTLP, noise): the copies, the batch function, the
training loop's rows and the spec's checks (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from trainflow.refs import load_npz

from trainflow.tasks.audio.features import AudioFeatures, wave_features
from trainflow.tasks.audio.perturb import (bank_augmenter, mel_filterbank, perturbed_features, perturbs,
                                           training_augmenter, vtlp_frequencies)

RATE = 8000
CFG = AudioFeatures(features="mfcc", n_mfcc=13, duration=0.3, n_fft=256, hop_length=160, n_mels=32,
                    freq_masks=0, time_masks=0)


def vowels(n: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Short harmonic clips (a pitch with a formant-like envelope) of random lengths under 0.3 s."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(int(rng.integers(1200, 2300))) / RATE
        f0 = rng.uniform(100, 200)
        out.append(sum(np.sin(2 * np.pi * f0 * k * t) / (1 + abs(f0 * k - 700) / 200) for k in range(1, 20))
                   .astype(np.float32) * 0.1)
    return out


def test_vtlp_warps_linearly_then_keeps_nyquist_and_alpha_one_is_librosas_filterbank():
    import librosa

    np.testing.assert_allclose(mel_filterbank(RATE, CFG), librosa.filters.mel(sr=RATE, n_fft=256, n_mels=32),
                               atol=1e-7)
    f = np.array([0.0, 1000.0, 2000.0, 4000.0])
    for alpha in (0.9, 1.1):
        warped = vtlp_frequencies(f, alpha, 4000.0)
        np.testing.assert_allclose(warped[:3], f[:3] * alpha)  # formants scale
        assert warped[-1] == pytest.approx(4000.0) and np.all(np.diff(warped) > 0)
    assert not np.allclose(mel_filterbank(RATE, CFG, 1.1), mel_filterbank(RATE, CFG))


def test_copies_are_seeded_perturbed_and_the_same_path_as_the_features():
    waves = vowels()
    x, _ = wave_features(waves, RATE, CFG)
    # noise 200 dB under the voice: the copy is the clip, computed by the same steps as its features
    quiet = perturbed_features(waves, RATE, CFG.model_copy(update={"noise_snr": [200, 200], "copies": 2}), seed=0)
    assert quiet.shape == (2, 6, 13, x.shape[2])
    np.testing.assert_allclose(quiet[1], x, atol=1e-3)
    voice = CFG.model_copy(update={"speed": 0.1, "vtlp": 0.1, "noise_snr": [10.0, 30.0], "copies": 3})
    a, b = perturbed_features(waves, RATE, voice, seed=0), perturbed_features(waves, RATE, voice, seed=0)
    np.testing.assert_array_equal(a, b)  # seeded
    assert not np.allclose(perturbed_features(waves, RATE, voice, seed=1), a)
    assert not np.allclose(a[0], x, atol=1e-2) and not np.allclose(a[0], a[1], atol=1e-2)  # each copy its own
    assert not perturbs(CFG) and training_augmenter(waves, RATE, None, CFG, None, 0) is None


def test_the_batch_draws_each_row_itself_or_one_of_its_copies():
    torch = pytest.importorskip("torch")
    bank = torch.arange(1, 4, dtype=torch.float32)[:, None, None, None] * 100 + torch.arange(10.0)[None, :, None, None]
    bank = bank.expand(3, 10, 2, 5).contiguous()  # copy k of row r holds 100 k + r
    augment = bank_augmenter(bank)
    assert augment.rows
    torch.manual_seed(0)
    rows = torch.tensor([7, 2, 2, 9, 0, 7, 7, 2] * 8)
    out = augment(torch.full((64, 2, 5), -1.0), rows)
    value = out[:, 0, 0]
    copy = torch.where(value < 0, torch.zeros_like(value), torch.div(value, 100, rounding_mode="floor"))
    assert torch.all((value == -1) | (value - copy * 100 == rows))  # the row's own copy, never another's
    assert set(copy.long().tolist()) == {0, 1, 2, 3}  # the clip itself (-1 here) and every copy are drawn


def test_the_loop_gives_the_rows_of_training_batches_only_after_a_carved_validation():
    torch = pytest.importorskip("torch")
    from trainflow.tasks.common.training import TrainConfig, train_model

    x = torch.arange(40, dtype=torch.float32)[:, None].repeat(1, 3)  # row r holds r
    y = torch.tensor([0, 1] * 20)
    seen = []

    def augment(batch, rows):
        seen.append(rows.clone())
        torch.testing.assert_close(batch[:, 0], rows.to(batch.dtype))  # the rows are the batch's
        return batch

    augment.rows = True
    config = TrainConfig(epochs=2, batch_size=8, val_fraction=0.25, checkpoint=False, lr=0.01)
    result = train_model(torch.nn.Linear(3, 2), (x, y), None, config, seed=0, augment=augment, log=lambda _: None)
    drawn = torch.cat(seen)
    assert len(drawn) == 2 * 30 and not set(drawn.tolist()) & set(result.validation.tolist())


@pytest.mark.parametrize("field, value, match", [
    ("noise_snr", [30, 10], "noise_snr must be \\[low, high\\]"),
    ("noise_snr", [10], "noise_snr must be"),
    ("speed", 0.6, "speed"),
    ("vtlp", -0.1, "vtlp"),
    ("tta_speed", [2.0], "tta_speed"),
])
def test_bad_perturbation_values_name_the_field(field, value, match):
    with pytest.raises(ValidationError, match=match):
        AudioFeatures(**{field: value})


def test_a_spec_with_bad_noise_is_a_spec_error_naming_it(tmp_path):
    from trainflow.errors import SpecError
    from trainflow.spec import spec_from_dict

    with pytest.raises(SpecError, match="preprocess.audio.noise_snr"):
        spec_from_dict({"name": "n", "data": {"loader": "audio_folder", "path": str(tmp_path)},
                        "preprocess": {"audio": {"noise_snr": [20, 5]}}})
    with pytest.raises(SpecError, match="need a fixed preprocess.audio.duration"):
        spec_from_dict({"name": "n", "data": {"loader": "audio_folder", "path": str(tmp_path)},
                        "preprocess": {"audio": {"speed": 0.1, "duration": None}}})


def test_tta_candidates_share_the_fold_networks_and_prediction_averages_the_voices(tmp_path, monkeypatch):
    from tests.test_audio_select import spec_of, speaker_clips
    from trainflow.tasks.audio import modality as audio
    from trainflow.tasks.audio import select
    from trainflow.tasks.common import load

    torch = pytest.importorskip("torch")
    trained = []
    real = select._fold_network
    monkeypatch.setattr(select, "_fold_network", lambda *a, **k: trained.append(1) or real(*a, **k))
    root = speaker_clips(tmp_path / "clips", {"al": 1.0, "bo": 1.04, "cy": 0.96, "di": 1.02}, per_class=3)
    spec = spec_of(root, {"candidates": [{}, {"tta_speed": [0.9, 1.0, 1.1]}, {"tta_vtlp": [0.95, 1.05]},
                                         {"tta_tempo": [1.1]}], "folds": 3, "epochs": 2})
    cache = str(tmp_path / "cache")
    split = audio.split(load.load(spec.data, cache, "audio", spec.split), spec, cache)
    ref = audio.fit(split, spec, cache)
    assert len(trained) == 3  # one network a fold: the candidates change only how it predicts
    model, config = audio.load_model(ref.path)
    assert len(config["recipe_selection"]["table"]) == 4
    model.eval()
    waves = audio.waves_of(load_npz(split.test.path))
    config["features"] |= {"tta_speed": [0.9, 1.1], "tta_vtlp": [1.05], "tta_tempo": []}  # whichever was chosen
    plain = {**config, "features": {**config["features"], "tta_speed": [], "tta_vtlp": []}}
    each = []
    for voice in [(0.9, 1.05), (1.1, 1.05)]:
        x, mask = audio.features_of(waves, config, voice)
        each.append(torch.softmax(model(torch.from_numpy(x), torch.from_numpy(mask)), 1).detach().numpy())
    np.testing.assert_allclose(audio.probabilities(model, config, waves, "cpu"), np.mean(each, 0), atol=1e-5)
    assert not np.allclose(audio.probabilities(model, plain, waves, "cpu"), np.mean(each, 0), atol=1e-3)
    # a tempo: the clip itself and the clip 1.2 times faster through the filterbank warped by 1 / 1.2
    tempo = {**config, "features": {**plain["features"], "tta_tempo": [1.2]}}
    each = []
    for voice in [(1.0, 1.0), (1.2, 1 / 1.2)]:
        x, mask = audio.features_of(waves, config, voice)
        each.append(torch.softmax(model(torch.from_numpy(x), torch.from_numpy(mask)), 1).detach().numpy())
    np.testing.assert_allclose(audio.probabilities(model, tempo, waves, "cpu"), np.mean(each, 0), atol=1e-5)


def test_a_tempo_of_the_test_time_grid_changes_the_pace_and_keeps_the_formants():
    from trainflow.tasks.audio.perturb import tta_grid, voiced_at

    grid = tta_grid(AudioFeatures(tta_speed=[0.9, 1.1], tta_vtlp=[1.0], tta_tempo=[0.8, 1.25]))
    assert grid == [(0.9, 1.0), (1.1, 1.0), (0.8, 1.25), (1.25, 0.8)]
    assert tta_grid(AudioFeatures(tta_tempo=[1.2]))[0] == (1.0, 1.0)  # the clip itself stays in the average
    with pytest.raises(ValidationError, match="tta_tempo"):
        AudioFeatures(tta_tempo=[1.0] * 6)
    with pytest.raises(ValidationError, match="tta_tempo need a fixed"):
        AudioFeatures(tta_tempo=[1.2], duration=None)
    t = np.arange(2000) / RATE  # 0.25 s of a 150 Hz voice with one formant at 1 kHz
    wave = (sum(np.sin(2 * np.pi * 150 * k * t) / (1 + abs(150 * k - 1000) / 100) for k in range(1, 26))
            * 0.1).astype(np.float32)
    logmel = AudioFeatures(features="logmel", n_mels=32, n_fft=256, hop_length=160, duration=0.3)
    envelope = {voice: voiced_at([wave], RATE, logmel, *voice)[0, :, 2:8].mean(1) for voice in
                [(1.0, 1.0), (1.25, 1.0), (1.25, 0.8)]}  # the mean log-mel of frames inside every version
    peak = {voice: int(env.argmax()) for voice, env in envelope.items()}
    assert peak[(1.25, 1.0)] > peak[(1.0, 1.0)]  # faster by resampling: the formant moves up a band or more
    assert abs(peak[(1.25, 0.8)] - peak[(1.0, 1.0)]) <= 1  # the tempo pair puts it back
    assert (np.abs(envelope[(1.25, 0.8)] - envelope[(1.0, 1.0)]).mean()
            < np.abs(envelope[(1.25, 1.0)] - envelope[(1.0, 1.0)]).mean() / 2)
    level = {voice: voiced_at([wave], RATE, logmel, *voice)[0].mean(0) for voice in [(1.0, 1.0), (1.25, 0.8)]}
    voiced = {voice: int((lv > lv.max() - 4).sum()) for voice, lv in level.items()}
    assert voiced[(1.25, 0.8)] < voiced[(1.0, 1.0)]  # and the clip is over sooner
