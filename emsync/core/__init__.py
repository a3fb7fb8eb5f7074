"""The runtime core, imported by every other package: notes and scenes, emotions, the event
codec and its conditions, the ONNX generator and the regeneration of a range, MIDI files.

Needs only numpy, onnxruntime and mido: no torch, no video or timeline libraries.
"""
