"""Parameter and multiply-accumulate (MAC) counts.

MACs come from ptflops' `aten` backend, which intercepts every aten op a forward pass runs, so the
attention matmuls (`bmm`/`mm`) are counted along with the convolutions (its default `pytorch` backend
counts only module-level layers and misses them). Convolutions count weight MACs plus one per output for
the bias; elementwise ops, normalisation, softmax and activations count zero, as in most papers.

`F.scaled_dot_product_attention`: on CPU under ptflops' dispatch mode torch runs the math kernel, whose
two `bmm`s are counted like the reference path's explicit matmuls (tests check fused == reference
counts). Should torch dispatch to a fused kernel instead (flash / efficient / cuDNN, e.g. on GPU), the
hooks below count it as 2*B*heads*Lq*Lk*d MACs (q.k^T and A.v), the same number.

Counts include the model's own symmetric padding to a multiple of 32, as the official `flops()` did.
"""

from __future__ import annotations

import copy
import io
import math

import torch
from torch import nn

MACS_METHOD = "ptflops-aten"


def count_params(model: nn.Module) -> int:
    """Trainable parameters (buffers such as relative_position_index are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _sdpa_macs(inputs, outputs) -> int:
    q, k, v = inputs[0], inputs[1], inputs[2]
    batch = math.prod(q.shape[:-2])
    return batch * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _sdpa_hooks() -> dict:
    aten = torch.ops.aten
    names = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
             "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention")
    return {getattr(aten, n): _sdpa_macs for n in names if hasattr(aten, n)}


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """MACs of one forward pass on a [1, C, h, w] input (ptflops aten backend, attention included).

    Counted on the `meta` device when the model allows it: the aten backend only needs the ops and
    their shapes, so nothing is computed and a 1280x720-output count takes a second instead of a
    full CPU forward. Models that leave torch (Bicubic runs numpy) are counted on real tensors.
    """
    try:
        if next(model.parameters(), None) is None:  # non-learned (numpy) baselines: nothing to gain
            raise NotImplementedError
        return _count_macs(copy.deepcopy(model).eval().to("meta"), input_shape, torch.device("meta"))
    except Exception:  # noqa: BLE001 - any op without a meta kernel: count on real tensors instead
        probe = copy.deepcopy(model).eval()
        first = next(probe.parameters(), None)  # Bicubic and Identity have none
        return _count_macs(probe, input_shape, first.device if first is not None else torch.device("cpu"))


def _count_macs(probe: nn.Module, input_shape: tuple[int, int, int], device: torch.device) -> int:
    from ptflops import get_model_complexity_info

    # ptflops leaves forward hooks on the modules it inspects: `probe` is always a throw-away copy.
    log = io.StringIO()
    with torch.no_grad():
        macs, _ = get_model_complexity_info(
            probe, tuple(input_shape), as_strings=False, print_per_layer_stat=False, backend="aten",
            input_constructor=lambda shape: torch.empty(1, *shape, device=device).uniform_(),
            custom_modules_hooks=_sdpa_hooks(), ost=log)
    if macs is None:
        raise RuntimeError(f"ptflops could not count MACs for input {input_shape}: {log.getvalue().strip()}")
    return int(macs)
