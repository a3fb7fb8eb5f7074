"""emsync core: scenes, the MIDI event codec, the generator and its evaluation.

Everything here runs without torch; training and export live in `emsync_core.train`
and `emsync_core.export`, which need the `train` extra.
"""
