"""Running a generator graph a token at a time: its key/value cache, two ways.

`GrowingCache` runs a graph exported from torch (training/export.py), whose cache goes in as
`past_*` and comes back one token longer as `present_*`. `SharedCache` runs the runtime graph
(training/runtime_graph.py), whose cache is one buffer per layer and kind, bound as both past
and present and written in place. Both offer `start` (a sequence from an empty cache) and
`step` (one more token), for `rows` conditionings of the same tokens; each generation makes
its own, so generations on one MusicGenerator may run in parallel threads.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from emsync.core.conditions import NO_GRID_AHEAD, NO_GRID_SLOT
from emsync.core.errors import EmsyncError

if TYPE_CHECKING:
    from emsync.core.generator import MusicGenerator

SHARED_CACHE_GRAPH = "shared-cache"  # emsync_graph metadata of a runtime graph (training/runtime_graph.py)


def cache_names(n_layer: int, kind: str) -> list[str]:
    """ONNX input ("past") or output ("present") names of the key/value cache, in model order."""
    return [f"{kind}_{part}_{i}" for i in range(n_layer) for part in ("key", "value")]



class GrowingCache:
    """Runs a graph exported from torch (training/export.py): the cache goes in as `past_*` and
    comes back one token longer as `present_*`, kept as onnxruntime values between calls (no
    copy through numpy: that copy was half the cost of a step)."""

    def __init__(self, generator: "MusicGenerator", rows: int, alone: bool = True):
        self.generator, self.rows = generator, rows
        self.session = generator.session("alone" if alone else "beside")
        self.past: list | None = None

    def start(self, tokens, emotion, offsets, grid) -> np.ndarray:
        """Logits (rows, T, vocab) of `tokens` from an empty cache, which they then fill."""
        self.past = None
        return self._run(tokens, emotion, offsets, grid)

    def step(self, token: int, emotion, offset: int, grid) -> np.ndarray:
        """Logits (rows, vocab) of one more token (emotion (rows, 2), grid (2,) or None)."""
        return self._run([token], emotion[:, None], [offset], None if grid is None else grid[None])[:, -1]

    def _run(self, tokens, emotion, offsets, grid) -> np.ndarray:
        from onnxruntime import OrtValue

        generator = self.generator
        feeds = {name: OrtValue.ortvalue_from_numpy(array)
                 for name, array in generator.feeds(tokens, emotion, offsets, grid, self.rows).items()}
        if self.past is None:
            cfg = generator.config
            empty = np.zeros((self.rows, cfg["n_head"], 0, cfg["n_embd"] // cfg["n_head"]), dtype=np.float32)
            self.past = [OrtValue.ortvalue_from_numpy(empty)] * 2 * cfg["n_layer"]
        feeds.update(zip(cache_names(generator.config["n_layer"], "past"), self.past))
        outputs = ["logits", *cache_names(generator.config["n_layer"], "present")]
        logits, *self.past = self.session.run_with_ort_values(outputs, feeds)
        return logits.numpy()


class SharedCache:
    """Runs a runtime graph (training/runtime_graph.py): one cache buffer of `block_size`
    positions per layer and kind, bound as both `past_*` and `present_*`, that each call
    writes in place. The one-token inputs and the logits are numpy arrays bound once and
    updated in place, so a step costs one onnxruntime call and a few stores."""

    def __init__(self, generator: "MusicGenerator", rows: int, alone: bool = True):
        from onnxruntime import OrtValue

        cfg = generator.config
        self.generator, self.rows, self.block = generator, rows, cfg["block_size"]
        # Starts and steps may run on two sessions (MusicGenerator's doc); both write the same
        # cache buffers.
        self.start_session = generator.session("alone" if alone else "start")
        self.step_session = generator.session("alone" if alone else "beside")
        self.start_binding = self.start_session.io_binding()
        self.step_binding = self.step_session.io_binding()
        shape = (rows, cfg["n_head"], self.block, cfg["n_embd"] // cfg["n_head"])
        self._cache = [OrtValue.ortvalue_from_numpy(np.zeros(shape, dtype=np.float32)) for _ in range(2 * cfg["n_layer"])]
        for binding in (self.start_binding, self.step_binding):
            for past, present, value in zip(cache_names(cfg["n_layer"], "past"),
                                            cache_names(cfg["n_layer"], "present"), self._cache):
                binding.bind_ortvalue_input(past, value)
                binding.bind_ortvalue_output(present, value)
        self.step_inputs = self._arrays([0], np.zeros((rows, 1, 2)), [0], None, 0)
        self.step_logits = np.zeros((rows, 1, cfg["vocab_size"]), dtype=np.float32)
        self._step_values = self._bind(self.step_binding, self.step_inputs, self.step_logits)
        self._start_values: list = []
        self.length = 0  # positions of the cache filled

    def _arrays(self, tokens, emotion, offsets, grid, start: int) -> dict[str, np.ndarray]:
        arrays = self.generator.feeds(tokens, emotion, offsets, grid, self.rows)
        steps = arrays["tokens"].shape[1]
        arrays["positions"] = np.array(np.broadcast_to(np.arange(start, start + steps), (self.rows, steps)), order="C")
        arrays["seqlens_k"] = np.full(self.rows, start + steps - 1, dtype=np.int32)
        arrays["total_sequence_length"] = np.array(start + steps, dtype=np.int32)
        return arrays

    @staticmethod
    def _bind(binding, arrays: dict[str, np.ndarray], logits: np.ndarray) -> list:
        """Binds the arrays as inputs and `logits` as the output; returns the onnxruntime values,
        which must live as long as the binding reads their memory."""
        from onnxruntime import OrtValue

        values = [(name, OrtValue.ortvalue_from_numpy(array)) for name, array in arrays.items()]
        for name, value in values:
            binding.bind_ortvalue_input(name, value)
        values.append(("logits", OrtValue.ortvalue_from_numpy(logits)))
        binding.bind_ortvalue_output("logits", values[-1][1])
        return values

    def start(self, tokens, emotion, offsets, grid) -> np.ndarray:
        """Logits (rows, T, vocab) of `tokens` from position 0, which they then fill."""
        if len(tokens) > self.block:
            raise EmsyncError(f"{len(tokens)} tokens do not fit the model's {self.block}-token context")
        arrays = self._arrays(tokens, emotion, offsets, grid, 0)
        logits = np.empty((self.rows, len(tokens), self.step_logits.shape[2]), dtype=np.float32)
        self._start_values = self._bind(self.start_binding, arrays, logits)
        self.start_session.run_with_iobinding(self.start_binding)
        self.length = len(tokens)
        return logits

    def step(self, token: int, emotion, offset: int, grid) -> np.ndarray:
        """Logits (rows, vocab) of one more token (emotion (rows, 2), grid (2,) or None); the
        array is overwritten by the next step."""
        if self.length >= self.block:
            raise EmsyncError(f"the model's {self.block}-token context is full")
        inputs = self.step_inputs
        inputs["tokens"][:] = token
        inputs["emotion"][:, 0] = emotion
        inputs["offsets"][:] = offset
        if "grid" in inputs:
            inputs["grid"][:, 0] = (NO_GRID_AHEAD, NO_GRID_SLOT) if grid is None else grid
        inputs["positions"][:] = self.length
        inputs["seqlens_k"][:] = self.length
        inputs["total_sequence_length"][...] = self.length + 1
        self.step_session.run_with_iobinding(self.step_binding)
        self.length += 1
        return self.step_logits[:, 0]
