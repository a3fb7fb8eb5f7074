"""What plain talk does to the sound evidence: the figure behind `sound.sound_evidence`
tempering loudness and onsets by the share of talk.

espeak-ng (Debian package `espeak-ng`; not a test dependency) reads a calm, everyday
paragraph at 160 words a minute. Scaled to three peak levels (the last about what a phone's
gain makes of a voice at arm's length), the script prints the scene's loudness and onset rate,
the arousal they give and their confidence with and without the talk share, and what the
sound-event model hears (its "speech" share and loudest classes).

    python benchmarks/probe_speech.py [--words-per-minute 160]
"""
import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

from emsync.video.sound import AUDIO_RATE, SoundTrack, sound_evidence
from emsync.video.sound_events import SoundEvents, event_evidence, log_mel, patches

TEXT = ("Hey, how was your day? We went to the park this morning and the kids played on the swings for a "
        "while. Then we had lunch at that little place by the river. It was nice, nothing special, but nice. "
        "Did you call your mother back yet? She wanted to know about Sunday.")
PEAKS = (0.05, 0.2, 0.6)


def spoken(words_per_minute: int) -> np.ndarray:
    """The paragraph as mono float32 samples at AUDIO_RATE."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "talk.wav"
        subprocess.run(["espeak-ng", "-w", str(path), "-s", str(words_per_minute), TEXT], check=True)
        rate, samples = wavfile.read(path)
    samples = samples.astype(np.float32) / 32768.0
    return resample_poly(samples, AUDIO_RATE, rate).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words-per-minute", type=int, default=160)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        sys.exit("probe_speech: needs espeak-ng (apt-get install espeak-ng)")
    talk = spoken(args.words_per_minute)
    events = SoundEvents()
    heard = event_evidence(events.scores(patches(log_mel(talk))), events.classes)
    speech = heard.features["speech"]
    rows = []
    for peak in PEAKS:
        track = SoundTrack(AUDIO_RATE)
        track.feed(talk / np.abs(talk).max() * peak)
        values, seconds = track.finish(0.0).features(0.0, len(talk) / AUDIO_RATE)
        plain, tempered = sound_evidence(values, seconds), sound_evidence(values, seconds, speech)
        rows.append({"peak": peak, "loudness_lufs": round(values["loudness"], 1),
                     "onsets_per_second": round(values["onset_rate"], 2), "arousal": round(plain.arousal, 2),
                     "confidence_without_talk_share": plain.confidence,
                     "confidence": round(tempered.confidence, 3)})
    print(json.dumps({"seconds": round(len(talk) / AUDIO_RATE, 1), "speech_share": speech,
                      "heard": heard.heard, "event_confidence": heard.confidence, "levels": rows}, indent=2))


if __name__ == "__main__":
    main()
