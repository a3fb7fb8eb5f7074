"""Hearing and seeing a score: SoundFont render to a loudness-normalised WAV, and the piano
roll under the cuts (the `preview` extra)."""
