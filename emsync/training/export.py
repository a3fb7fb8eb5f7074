"""Export the generator to ONNX with a key/value cache, and read weights back from it.

The ONNX file is self-describing: its metadata holds the model config, the training
history and a map from every torch parameter to the initializer that carries it, so
`emsync train --init-from model.onnx` resumes from exactly the committed weights.

Beside it goes the runtime copy (`quantize_int8`): the same weights in the runtime graph
(runtime_graph.py: fused attention over a cache written in place), its matrix products
weight-only int8 with int8 arithmetic (onnxruntime's MatMulNBits, accuracy level 4), which
make a one-token step faster (the model card has the figures). The float file stays the
weights of record.

Both files hold their weights inline (no external data), written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from emsync.core.fileio import atomic_output
from emsync.core.decoding import SHARED_CACHE_GRAPH, cache_names
from emsync.training.model import Generator, GeneratorConfig, load_weights
from emsync.training.runtime_graph import float_parameters, runtime_graph


class _WithCache(torch.nn.Module):
    """The generator with its cache as separate graph inputs and outputs (ONNX has no lists)."""

    def __init__(self, model: Generator):
        super().__init__()
        self.model = model

    def forward(self, tokens, emotion, offsets, *rest):
        grid, past = (rest[0], rest[1:]) if self.model.cfg.grid else (None, rest)
        logits, presents = self.model(tokens, emotion, offsets, list(past), grid=grid)
        return (logits, *presents)


def export_onnx(model: Generator, path: str | Path, history: dict | None = None) -> Path:
    model = model.float().eval().cpu()
    cfg = model.cfg
    head_dim = cfg.n_embd // cfg.n_head
    n_cache = 2 * cfg.n_layer
    # one tensor object per cache input: the exporter would merge aliased example inputs into one
    cache = [torch.zeros(1, cfg.n_head, 3, head_dim) for _ in range(n_cache)]
    batch, steps, cached = torch.export.Dim("batch"), torch.export.Dim("steps"), torch.export.Dim("cached")
    grid = (torch.ones(1, 4, 2, dtype=torch.long),) if cfg.grid else ()
    example = (torch.randint(0, cfg.vocab_size, (1, 4)), torch.zeros(1, 4, 2), torch.zeros(1, 4, dtype=torch.long),
               *grid, *cache)
    rest = ({0: batch, 1: steps},) * len(grid) + ({0: batch, 2: cached},) * n_cache  # the grid and the cache
    shapes = ({0: batch, 1: steps}, {0: batch, 1: steps}, {0: batch, 1: steps}, rest)
    program = torch.onnx.export(_WithCache(model).eval(), example,
                                input_names=["tokens", "emotion", "offsets", *(["grid"] if cfg.grid else []),
                                             *cache_names(cfg.n_layer, "past")],
                                output_names=["logits", *cache_names(cfg.n_layer, "present")],
                                dynamic_shapes=shapes, dynamo=True, verbose=False)
    graph = program.model_proto
    mapping = _parameter_map(model, graph)
    for key, value in (("emsync_config", json.dumps(cfg.to_dict())),
                       ("emsync_history", json.dumps(history or {})),
                       ("emsync_parameters", json.dumps(mapping))):
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_output(path) as tmp:
        onnx.save(graph, str(tmp))  # weights inline: one self-contained file
    return Path(path)


def quantize_int8(source: str | Path, target: str | Path) -> Path:
    """The runtime copy of a float export: its weights in the runtime graph (runtime_graph.py),
    the matrix products weight-only int8 (blocks of 32 weights, symmetric) except the two
    that read only the valence/arousal pair (two rows: nothing to gain, precision to lose)."""
    import logging

    from onnxruntime.quantization import matmul_nbits_quantizer as nbits

    logging.getLogger("onnxruntime.quantization").setLevel(logging.WARNING)
    parameters, meta = float_parameters(onnx.load(str(source)), str(source))
    graph = runtime_graph(parameters, json.loads(meta["emsync_config"]))
    from_emotion = [node.name for node in graph.graph.node if node.op_type == "MatMul" and node.input[0] == "emotion"]
    config = nbits.DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = nbits.MatMulNBitsQuantizer(graph, nodes_to_exclude=from_emotion, algo_config=config)
    quantizer.process()
    graph = quantizer.model.model
    kept = [(key, value) for key, value in meta.items() if key != "emsync_parameters"]
    del graph.metadata_props[:]
    for key, value in kept + [("emsync_precision", "int8"), ("emsync_graph", SHARED_CACHE_GRAPH)]:
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_output(target) as tmp:
        onnx.save(graph, str(tmp))
    return Path(target)


def _parameter_map(model: Generator, graph: onnx.ModelProto) -> dict:
    """{parameter: [initializer, transposed]} found by value, so exporter renames don't matter."""
    inits = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    mapping = {}
    for name, tensor in model.state_dict().items():
        value = tensor.detach().float().numpy()
        for init_name, array in inits.items():
            if array.shape == value.shape and np.array_equal(array, value):
                mapping[name] = [init_name, False]
                break
            if value.ndim == 2 and array.shape == value.T.shape and np.array_equal(array, value.T):
                mapping[name] = [init_name, True]
                break
        else:
            raise RuntimeError(f"parameter {name} not found among the exported initializers")
    return mapping


def onnx_metadata(path: str | Path) -> dict:
    graph = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in graph.metadata_props}


def load_onnx_weights(path: str | Path) -> tuple[Generator, dict]:
    """A torch Generator holding the weights of an exported model, and its history."""
    parameters, meta = float_parameters(onnx.load(str(path)), str(path))
    model = Generator(GeneratorConfig(**json.loads(meta["emsync_config"])))
    load_weights(model, {name: torch.from_numpy(array) for name, array in parameters.items()}, str(path))
    return model, json.loads(meta.get("emsync_history", "{}"))
