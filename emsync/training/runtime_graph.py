"""The generator rebuilt for the runtime: the same weights as the float export, in a graph made
of onnxruntime's fused operators and with a key/value cache that is written in place.

The torch export (export.py) is the weights of record: plain ONNX operators, a cache that
comes in as `past_*` and goes out one token longer as `present_*`. Run one token at a time,
that graph costs mostly in the number of its nodes (about 260, each a few microseconds on
a CPU, against well under a millisecond of arithmetic for a model this small) and in the
concatenation that copies the whole cache on every token.

This graph computes the same function with about a third of the nodes:

- attention is one `GroupQueryAttention` per layer (com.microsoft; query, key and value
  heads equal), whose cache is a buffer of `block_size` positions per layer and kind that the
  caller binds as both `past_*` and `present_*`: a token writes its key and value into it
  and nothing is copied; `seqlens_k` (cached tokens after this call, minus one, per row) and
  `total_sequence_length` say how much of it is filled;
- every layer's emotion modulation (adaLN scale and shift) is one matrix product of the
  valence/arousal pair, split per layer, with the 1 of (1 + scale) folded into the bias;
- positions are an input (`positions`), since the cache no longer tells its own length.

`emsync.core.generator` drives it through an onnxruntime IOBinding; `runtime_graph` is
export-time code (it needs the `onnx` package, as the export does). The int8 runtime copy
(export.quantize_int8) is this graph with its large matrix products quantized.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from emsync.core.errors import EmsyncError

OPSET = 17
LAYER_NORM_EPSILON = 1e-5  # torch.nn.LayerNorm's default, as the model uses


def runtime_graph(parameters: dict[str, np.ndarray], config: dict) -> onnx.ModelProto:
    """The runtime graph of a generator with these float `parameters` (torch names, torch
    layouts) and `config` (GeneratorConfig as a dict)."""
    n_layer, n_head, width = config["n_layer"], config["n_head"], config["n_embd"]
    head_size = width // n_head
    nodes: list[onnx.NodeProto] = []
    weights: list[onnx.TensorProto] = []

    def constant(name: str, array: np.ndarray) -> str:
        weights.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def node(op: str, inputs: list[str], outputs: list[str] | str, domain: str = "", **attributes) -> list[str]:
        outputs = [outputs] if isinstance(outputs, str) else outputs
        nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], domain=domain, **attributes))
        return outputs

    def linear(x: str, prefix: str, name: str) -> str:
        """x @ W.T + b for torch Linear `prefix` (the bias optional)."""
        bias = parameters.get(f"{prefix}.bias")
        (y,) = node("MatMul", [x, constant(f"{prefix}.weight.T", parameters[f"{prefix}.weight"].T)],
                    name if bias is None else f"{name}_mm")
        return y if bias is None else node("Add", [y, constant(f"{prefix}.bias", bias)], name)[0]

    def layer_norm(x: str, prefix: str, name: str) -> str:
        return node("LayerNormalization", [x, constant(f"{prefix}.weight", parameters[f"{prefix}.weight"]),
                                           constant(f"{prefix}.bias", parameters[f"{prefix}.bias"])], name,
                    axis=-1, epsilon=LAYER_NORM_EPSILON)[0]

    def embed(table: str, index: str, name: str) -> str:
        return node("Gather", [constant(f"{table}.weight", parameters[f"{table}.weight"]), index], name)[0]

    # Embeddings: token and emotion side by side, then the added conditions.
    emotion_part = linear("emotion", "emotion_emb", "emotion_part")
    (x,) = node("Concat", [embed("token_emb", "tokens", "token_part"), emotion_part], "x_tokens", axis=-1)
    added = [embed("offset_emb", "offsets", "offset_part"), embed("pos_emb", "positions", "position_part")]
    if config.get("grid"):
        for column, table in enumerate(("grid_ahead_emb", "grid_slot_emb")):
            (index,) = node("Gather", ["grid", constant(f"{table}.column", np.array(column, np.int64))],
                            f"{table}_index", axis=2)
            added.append(embed(table, index, f"{table}_part"))
    for number, part in enumerate(added):
        (x,) = node("Add", [x, part], f"x_embedded_{number}")

    # Every layer's modulation at once: (B, T, 2) @ (2, n_layer * 4 * width).
    modulated = config.get("emotion_modulation", False)
    if modulated:
        matrices, biases = [], []
        for layer in range(n_layer):
            matrix = parameters[f"blocks.{layer}.modulation.weight"].T  # (2, 4 * width)
            bias = parameters[f"blocks.{layer}.modulation.bias"].copy()
            bias[:width] += 1.0  # scale1 -> 1 + scale1
            bias[2 * width:3 * width] += 1.0  # scale2 -> 1 + scale2
            matrices.append(matrix)
            biases.append(bias)
        (all_modulation,) = node("MatMul", ["emotion", constant("modulation.weight", np.concatenate(matrices, 1))],
                                 "modulation_mm")
        (all_modulation,) = node("Add", [all_modulation, constant("modulation.bias", np.concatenate(biases))],
                                 "modulation")
        pieces = node("Split", [all_modulation, constant("modulation.split", np.full(4 * n_layer, width, np.int64))],
                      [f"modulation_{layer}_{part}" for layer in range(n_layer)
                       for part in ("scale1", "shift1", "scale2", "shift2")], axis=-1)

    def modulate(normed: str, layer: int, which: int, name: str) -> str:
        if not modulated:
            return normed
        scale, shift = pieces[4 * layer + 2 * which], pieces[4 * layer + 2 * which + 1]
        (scaled,) = node("Mul", [normed, scale], f"{name}_scaled")
        return node("Add", [scaled, shift], name)[0]

    split_qkv = constant("qkv.split", np.full(3, width, np.int64))
    for layer in range(n_layer):
        prefix = f"blocks.{layer}"
        h = modulate(layer_norm(x, f"{prefix}.ln1", f"ln1_{layer}"), layer, 0, f"h1_{layer}")
        q, k, v = node("Split", [linear(h, f"{prefix}.attn.qkv", f"qkv_{layer}"), split_qkv],
                       [f"q_{layer}", f"k_{layer}", f"v_{layer}"], axis=-1)
        (attended, _, _) = node("GroupQueryAttention",
                                [q, k, v, f"past_key_{layer}", f"past_value_{layer}", "seqlens_k",
                                 "total_sequence_length"],
                                [f"attended_{layer}", f"present_key_{layer}", f"present_value_{layer}"],
                                domain="com.microsoft", num_heads=n_head, kv_num_heads=n_head)
        (x,) = node("Add", [x, linear(attended, f"{prefix}.attn.proj", f"proj_{layer}")], f"x_attn_{layer}")
        h = modulate(layer_norm(x, f"{prefix}.ln2", f"ln2_{layer}"), layer, 1, f"h2_{layer}")
        (hidden,) = node("MatMul", [h, constant(f"{prefix}.mlp.0.weight.T", parameters[f"{prefix}.mlp.0.weight"].T)],
                         f"fc1_{layer}")
        (hidden,) = node("FastGelu", [hidden, constant(f"{prefix}.mlp.0.bias", parameters[f"{prefix}.mlp.0.bias"])],
                         f"gelu_{layer}", domain="com.microsoft")  # GELU, tanh approximation, as trained
        (x,) = node("Add", [x, linear(hidden, f"{prefix}.mlp.2", f"fc2_{layer}")], f"x_mlp_{layer}")
    linear(layer_norm(x, "ln_f", "ln_f"), "head", "logits")

    batch, steps, cached = "batch", "steps", "cache_positions"
    cache_shape = [batch, n_head, cached, head_size]
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, [batch, steps]),
              helper.make_tensor_value_info("emotion", TensorProto.FLOAT, [batch, steps, 2]),
              helper.make_tensor_value_info("offsets", TensorProto.INT64, [batch, steps]),
              helper.make_tensor_value_info("positions", TensorProto.INT64, [batch, steps])]
    if config.get("grid"):
        inputs.append(helper.make_tensor_value_info("grid", TensorProto.INT64, [batch, steps, 2]))
    inputs += [helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [batch]),
               helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, [])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, steps, config["vocab_size"]])]
    for layer in range(n_layer):
        for kind in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}_{layer}", TensorProto.FLOAT, cache_shape))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}_{layer}", TensorProto.FLOAT, cache_shape))
    graph = helper.make_graph(nodes, "emsync_generator_runtime", inputs, outputs, weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    return model


def float_parameters(graph: onnx.ModelProto, source: str) -> tuple[dict[str, np.ndarray], dict]:
    """The torch-named parameters held by a float export (`source` names it in errors), and
    its metadata."""
    meta = {p.key: p.value for p in graph.metadata_props}
    if "emsync_parameters" not in meta:
        raise EmsyncError(f"{source}: holds no trainable weights (an int8 runtime copy, or not an emsync "
                          "generator); start from the float export")
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    parameters = {}
    for name, (initializer, transposed) in json.loads(meta["emsync_parameters"]).items():
        array = initializers[initializer]
        parameters[name] = np.array(array.T if transposed else array, dtype=np.float32)
    return parameters, meta
