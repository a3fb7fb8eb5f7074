"""A video file as a source of scenes: one decode pass gives the cuts (TransNetV2) and each
scene's emotion from faces, picture and sound (`analysis.analyze_video`). Needs the `video`
extra (PyAV, OpenCV)."""
