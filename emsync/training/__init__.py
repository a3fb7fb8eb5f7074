"""Training the generator: the corpus build, the torch model, the training loop, ONNX export
and the evaluation. The only package that imports torch (`pip install 'emsync[train]'`)."""
