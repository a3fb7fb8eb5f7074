"""emsync: score a video or an editor's timeline with editable MIDI whose emotion follows the picture.

Data flows one way, and the packages follow it:

    sources of scenes          core                    service           hosts
    timelines/ (OTIO, EDL...)  core/ (scenes, codec,   service/ (one     cli.py, osc/ (DAW/NLE
    video/ (cuts, emotion)  -> generator, MIDI)     -> scoring service -> plugins), live/ (MIDI
                                                       and its session)  ports); preview/ (audio,
                                                                         piano roll)
training/ makes the generator the core runs (the only package that imports torch).
"""
