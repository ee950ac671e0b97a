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

Paper conventions. `count_macs` is the one rule the report applies to every model (SR at the LR input
of a 1280x720 output, 256x256 otherwise; the forward as it runs, its own padding included; attention
matmuls and biases counted). Each baseline's paper counted its own way, so to compare with the number a
paper prints, `paper_params(model)` / `paper_gmacs(model)` count as that paper did, following the
`PaperConvention` the model's class declares in `paper_convention` (and `counting_rule(model)` says it
in words). Found by reproducing the printed numbers:
* IMDN: conv weight MACs without the bias additions, LR input ceil(1280/s) x ceil(720/s):
  158.8 / 71.5 / 40.9 G, as printed.
* SwinIR: its own analytic `flops()` (attention included), evaluated on ((1024/s)//8+1)*8 x
  ((720/s)//8+1)*8, not the 1280x720 its table caption says (SwinIR issues #65, #98); parameters
  without the relative position bias tables: 195.6 / 87.2 / 49.6 G and 878K / 886K / 897K, as printed.
* Retinexformer: fvcore-style (no bias, attention included, 5 ops per LayerNorm element) at 256x256,
  reported in units of 2^30 (the authors' `my_summary` divides by 1024^3): 15.57, as printed.
"""

from __future__ import annotations

import copy
import io
import math
from dataclasses import dataclass
from typing import Callable, Optional

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


def _no_macs(inputs, outputs) -> int:
    return 0


def _conv_without_bias(inputs, outputs) -> int:
    from ptflops.aten_ops import conv_flop_count

    x, w, _bias, *_rest = inputs
    return conv_flop_count(x.shape, w.shape, outputs[0].shape, transposed=bool(inputs[6]), bias=False)


def _addmm_without_bias(inputs, outputs) -> int:
    (n, k), m = inputs[1].shape, inputs[2].shape[1]
    return n * k * m


def _layer_norm_ops(per_element: int):
    def count(inputs, outputs) -> int:
        return per_element * inputs[0].numel()
    return count


def _hooks(attention: bool, bias: bool, layer_norm_ops: int = 0) -> dict:
    """aten op -> MAC counter for the chosen counting rule.

    Linear layers reach aten as `mm`/`addmm` (the input folded to 2-D against a 2-D weight), while
    attention's batched q.k^T and A.v are `bmm` (or a fused SDPA kernel): `bmm` is the line between them.
    """
    aten = torch.ops.aten
    hooks = _sdpa_hooks()
    if not attention:
        hooks = {op: _no_macs for op in hooks}
        hooks[aten.bmm] = _no_macs
    if not bias:
        hooks.update({aten.convolution: _conv_without_bias, aten._convolution: _conv_without_bias,
                      aten.addmm: _addmm_without_bias})
    if layer_norm_ops:  # fvcore counts 5 ops per element of an affine LayerNorm
        hooks[aten.native_layer_norm] = _layer_norm_ops(layer_norm_ops)
    return hooks


def count_macs(model: nn.Module, input_shape: tuple[int, int, int], attention: bool = True,
               bias: bool = True, layer_norm_ops: int = 0) -> int:
    """MACs of one forward pass on a [1, C, h, w] input (ptflops aten backend).

    `attention=False` leaves out the attention matmuls (batched activation products); `bias=False` the
    one addition per output of conv and linear biases; `layer_norm_ops` > 0 adds that many per element
    of every LayerNorm (fvcore's convention). The defaults count what the report counts.

    Counted on the `meta` device when the model allows it: the aten backend only needs the ops and
    their shapes, so nothing is computed and a 1280x720-output count takes a second instead of a
    full CPU forward. Models that leave torch (Bicubic runs numpy) are counted on real tensors.
    """
    try:
        if next(model.parameters(), None) is None:  # non-learned (numpy) baselines: nothing to gain
            raise NotImplementedError
        return _count_macs(copy.deepcopy(model).eval().to("meta"), input_shape, torch.device("meta"),
                           _hooks(attention, bias, layer_norm_ops))
    except Exception:  # noqa: BLE001 - any op without a meta kernel: count on real tensors instead
        probe = copy.deepcopy(model).eval()
        first = next(probe.parameters(), None)  # Bicubic and Identity have none
        return _count_macs(probe, input_shape, first.device if first is not None else torch.device("cpu"),
                           _hooks(attention, bias, layer_norm_ops))


def _count_macs(probe: nn.Module, input_shape: tuple[int, int, int], device: torch.device,
                hooks: Optional[dict] = None) -> int:
    from ptflops import get_model_complexity_info

    # ptflops leaves forward hooks on the modules it inspects: `probe` is always a throw-away copy.
    log = io.StringIO()
    with torch.no_grad():
        macs, _ = get_model_complexity_info(
            probe, tuple(input_shape), as_strings=False, print_per_layer_stat=False, backend="aten",
            input_constructor=lambda shape: torch.empty(1, *shape, device=device).uniform_(),
            custom_modules_hooks=_sdpa_hooks() if hooks is None else hooks, ost=log)
    if macs is None:
        raise RuntimeError(f"ptflops could not count MACs for input {input_shape}: {log.getvalue().strip()}")
    return int(macs)


# ------------------------------------------------------------------------------ paper conventions

def field_input_size(task: str, scale: Optional[int]) -> tuple[int, int]:
    """The field's convention: SR at the LR input of a 1280x720 output, other tasks 256x256."""
    if task == "sr":
        return 720 // scale, 1280 // scale
    return 256, 256


@dataclass(frozen=True)
class PaperConvention:
    """How a model's own paper counted parameters and Mult-Adds (see the module docstring)."""

    rule: str
    bias: bool = True                  # conv / linear bias additions counted
    attention: bool = True             # attention matmuls counted
    layer_norm_ops: int = 0            # ops counted per LayerNorm element (fvcore: 5)
    giga: float = 1e9                  # what the paper's "G" is (2**30 for 1024^3 reporters)
    # the (h, w) input the paper counted on, from (task, scale); None: the field's convention
    input_size: Optional[Callable[[str, Optional[int]], tuple[int, int]]] = None


FIELD_CONVENTION = PaperConvention(
    rule="every trainable parameter; MACs of every conv, linear and attention matmul incl. biases, on the "
         "forward as it runs (own padding included), SR at the LR input of a 1280x720 output, else 256x256")


def _convention(model: nn.Module) -> PaperConvention:
    return getattr(model, "paper_convention", FIELD_CONVENTION)


def paper_params(model: nn.Module) -> int:
    """Parameters as the model's paper counts them (e.g. SwinIR leaves out its bias tables)."""
    own = getattr(model, "paper_param_count", None)
    return own() if callable(own) else count_params(model)


def paper_input_size(model: nn.Module) -> tuple[int, int]:
    conv = _convention(model)
    task, scale = getattr(model, "task", "sr"), getattr(model, "scale", 1)
    scale = scale if task == "sr" else None
    return (conv.input_size or field_input_size)(task, scale)


def paper_macs(model: nn.Module) -> int:
    """Mult-Adds as the model's paper counted them, on the input it counted on (raw count).

    A model whose paper used an analytic formula of its own gives it as `paper_macs_formula(h, w)`.
    """
    conv = _convention(model)
    h, w = paper_input_size(model)
    formula = getattr(model, "paper_macs_formula", None)
    if callable(formula):
        return int(formula(h, w))
    return count_macs(model, (getattr(model, "in_chans", 3), h, w), attention=conv.attention, bias=conv.bias,
                      layer_norm_ops=conv.layer_norm_ops)


def paper_gmacs(model: nn.Module) -> float:
    """`paper_macs` in the paper's own "G" (1e9, or 2^30 where the paper divided by 1024^3)."""
    return paper_macs(model) / _convention(model).giga


def counting_rule(model: nn.Module) -> str:
    """One line on how `paper_params` / `paper_gmacs` count this model."""
    return _convention(model).rule
