r"""Operation counting for energy estimates, generic over model families.

:class:`OpCounter` is a ``TorchDispatchMode`` (the idea of SpikingJelly's ``op_counter``): every
aten op that runs inside it is seen, whatever Python code issued it, so no model needs
family-specific counting code. Forward pre/post hooks on every submodule keep a stack of module
names, and each op is attributed to the innermost module running it: the ``mm`` of a ``Linear`` to
``blocks.0.attn.q.linear``, the ``q @ k^T`` ``bmm`` to ``blocks.0.attn``. Counting is separate
from pricing; :func:`spikeformers.energy.price` turns the counts into energy.

The booking rule (one rule for every family, at any place in the network, inside a neuron too):
**an operation with a real-valued operand is a multiply-accumulate (MAC); only an operation whose
input is spikes (binary, or the integer spike counts of a residual stream) is priced as
accumulates (ACs)**: one per non-zero input entry in the paper convention, one per unit of count
in the full accounting (:mod:`spikeformers.energy.estimate`). It applies to every matmul-like op
(``mm``, ``addmm``, ``bmm``, ``baddbmm``, ``mv``, ``addmv``, ``dot``, ``convolution``, the fused
``scaled_dot_product_*`` kernels; ``aten.matmul`` and ``aten.linear`` decompose into these),
whichever module issued it: a ``Linear``, an attention product, or a neuron's own kernel (BPSN's
learnable temporal filters convolve the real-valued LayerNorm output: MACs; its reset count
convolves the previous pass's spikes: ACs).

- ``MACs`` is the dense count, e.g. ``M*K*N`` for ``mm([M, K], [K, N])``;
  ``N*C_out*prod(out_spatial)*(C_in/groups)*prod(kernel)`` for a convolution.
- The *input activation* operand is inspected, never the weight. An operand is a weight when it
  shares storage with a parameter or buffer of the counted model (``weight.t()`` is a view of
  one); for a convolution the kernel is the weight by the op's signature. When both operands are
  activations (attention's ``q @ k^T`` and ``A @ V``), the sparser *binary* one is the spike
  input: each of its spikes gates one accumulate of the other operand's row.
- The input is classified as ``binary`` (all values in {0, 1}: spikes), ``integer`` (all values
  integers, e.g. the residual stream after an additive residual holds spike counts) or ``real``.
  For binary and integer inputs the counter records the non-zero fraction ``fr`` (the firing
  rate) and the mean magnitude ``mean|x|``, each weighted by the op's MACs, so
  ``ACs = Σ_calls MACs × fr``. Real inputs are priced as MACs.
- Bias adds of ``addmm``/``baddbmm``/``addmv``/convolution are counted as other float ops
  (one per output element), so a ``Linear`` costs the same whether it runs as ``addmm`` or as
  ``mm`` + ``add`` (which PyTorch picks for an expanded input).

Time steps. Spiking models fold their time axis into the tensors the matmuls see: SpikeBERT's
``[T, B, L, D]`` enters a ``Linear`` as ``T*B*L`` rows; SNN-BERT's BPSN uses the token axis as
time. The counted ``MACs`` of an op therefore already include every time step
(``MACs = T × MACs_per_step``), and ``fr`` is measured over all steps, so
``ACs = fr × MACs = T × fr × MACs_per_step`` is exactly the convention's
``SOPs = T × fr × MACs_per_step``: ``T`` must NOT be multiplied in again.

Other work, counted as float ops per element (rough, stated constants, used only by the full
accounting): ``native_layer_norm`` :data:`LAYER_NORM_OPS` per element (mean, centre,
square-accumulate, scale by 1/σ, affine), softmax :data:`SOFTMAX_OPS` (max, subtract, exp, sum,
divide), GELU :data:`GELU_OPS`, other transcendental functions (exp, tanh, sigmoid, erf, sqrt...)
:data:`TRANSCENDENTAL_OPS`, elementwise arithmetic and comparisons :data:`ELEMENTWISE_OPS` per
output element, reductions :data:`REDUCTION_OPS` per input element. Embedding lookups cost no
arithmetic (recorded with 0 ops; memory traffic is not counted anywhere). Data movement (views,
copies, concatenation, padding, factory functions) costs 0. Any other aten op is listed in
``OpCounts.uncounted`` so that nothing is silently dropped.

Spiking neurons (subclasses of :class:`spikeformers.neurons.base.SpikingModule`, outermost
only): their membrane update is
counted as :data:`NEURON_OPS_PER_STEP` float op per element of the input they receive (one
multiply-add per neuron per time step for a LIF; the input ``[T, ...]`` has one element per neuron
and step), an ``other`` op of the full accounting. Elementwise ops *inside* a neuron are that
update and are not counted again; matmul-like ops inside one (BPSN's depthwise convolutions) are
booked by the rule above, in a row of the neuron's module (``convolution``, ``convolution#1``...),
like any other matmul. Each neuron's output firing rate (non-zero fraction) is recorded too, over
the real tokens of each forward's ``attention_mask`` (token axes per family:
the family's ``spike_layouts``) and over every position run.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from spikeformers.utils.literal import LiteralAlgorithmMode

__all__ = [
    "ELEMENTWISE_OPS",
    "GELU_OPS",
    "LAYER_NORM_OPS",
    "NEURON_OPS_PER_STEP",
    "REDUCTION_OPS",
    "SOFTMAX_OPS",
    "TRANSCENDENTAL_OPS",
    "OpCounter",
    "OpCounts",
    "RowCounts",
    "describe_input",
]

LAYER_NORM_OPS = 5.0
"""Float ops per element of a LayerNorm: mean, centre, square-accumulate, scale by 1/σ, affine."""
SOFTMAX_OPS = 5.0
"""Float ops per element of a softmax: max, subtract, exp, sum, divide."""
GELU_OPS = 8.0
"""Float ops per element of a GELU (erf or tanh form: a handful of multiplies, adds and a
transcendental)."""
TRANSCENDENTAL_OPS = 4.0
"""Float ops per element of exp, log, tanh, sigmoid, erf, sqrt, rsqrt, ... (rough)."""
ELEMENTWISE_OPS = 1.0
"""Float ops per output element of an add, multiply, compare, where, clamp, ..."""
REDUCTION_OPS = 1.0
"""Float ops per input element of a sum, mean, max, ..."""
NEURON_OPS_PER_STEP = 1.0
"""Float ops per neuron per time step for a membrane update (LIF: one multiply-add)."""

# Ops that move or create data without arithmetic: free (memory traffic is not priced).
_FREE = frozenset(
    [
        "view",
        "_unsafe_view",
        "reshape",
        "_reshape_alias",
        "expand",
        "expand_as",
        "t",
        "transpose",
        "permute",
        "unsqueeze",
        "squeeze",
        "select",
        "slice",
        "as_strided",
        "alias",
        "detach",
        "clone",
        "copy",
        "_to_copy",
        "to",
        "contiguous",
        "lift_fresh",
        "lift_fresh_copy",
        "cat",
        "stack",
        "split",
        "split_with_sizes",
        "unbind",
        "chunk",
        "narrow",
        "index_select",
        "index",
        "gather",
        "zeros",
        "zeros_like",
        "ones",
        "ones_like",
        "full",
        "full_like",
        "empty",
        "empty_like",
        "empty_strided",
        "new_zeros",
        "new_ones",
        "new_full",
        "new_empty",
        "new_empty_strided",
        "fill",
        "zero",
        "arange",
        "scalar_tensor",
        "_local_scalar_dense",
        "flip",
        "roll",
        "repeat",
        "constant_pad_nd",
        "pad",
        "unfold",
        "movedim",
        "diagonal",
        "tril",
        "triu",
        "masked_select",
        "nonzero",
        "sym_size",
        "sym_stride",
        "sym_numel",
        "sym_storage_offset",
        "is_same_size",
    ]
)
_ELEMENTWISE = frozenset(
    [
        "add",
        "sub",
        "rsub",
        "mul",
        "div",
        "neg",
        "abs",
        "eq",
        "ne",
        "ge",
        "gt",
        "le",
        "lt",
        "where",
        "masked_fill",
        "clamp",
        "clamp_min",
        "clamp_max",
        "maximum",
        "minimum",
        "relu",
        "threshold",
        "sign",
        "reciprocal",
        "bitwise_not",
        "bitwise_and",
        "bitwise_or",
        "logical_not",
        "logical_and",
        "logical_or",
        "logical_xor",
        "fmod",
        "remainder",
        "floor",
        "ceil",
        "round",
        "trunc",
        "frac",
        "lerp",
        "hardtanh",
        "leaky_relu",
        "square",
        "pow",
        "heaviside",
        "isnan",
        "isinf",
        "isfinite",
    ]
)
_TRANSCENDENTAL = frozenset(
    [
        "exp",
        "exp2",
        "expm1",
        "log",
        "log2",
        "log10",
        "log1p",
        "tanh",
        "sigmoid",
        "erf",
        "erfc",
        "sqrt",
        "rsqrt",
        "sin",
        "cos",
        "atan",
        "atan2",
        "softplus",
        "silu",
        "mish",
        "elu",
        "selu",
        "celu",
        "logit",
        "hardsigmoid",
        "hardswish",
    ]
)
_REDUCTIONS = frozenset(
    [
        "sum",
        "mean",
        "amax",
        "amin",
        "max",
        "min",
        "prod",
        "var",
        "std",
        "var_mean",
        "std_mean",
        "norm",
        "linalg_vector_norm",
        "count_nonzero",
        "argmax",
        "argmin",
        "any",
        "all",
        "cumsum",
        "logsumexp",
    ]
)
_SOFTMAX = frozenset({"_softmax", "softmax", "_log_softmax", "log_softmax", "_safe_softmax"})
_LAYER_NORM = frozenset({"native_layer_norm", "layer_norm", "rms_norm", "_fused_rms_norm"})
_BATCH_NORM = frozenset(
    {
        "native_batch_norm",
        "_native_batch_norm_legit",
        "_native_batch_norm_legit_no_training",
        "native_group_norm",
    }
)
_MATMUL = frozenset(
    {
        "mm",
        "addmm",
        "_addmm_activation",
        "bmm",
        "baddbmm",
        "mv",
        "addmv",
        "dot",
        "vdot",
        "convolution",
        "_convolution",
    }
)


@dataclass
class InputStats:
    """What a matmul's input activation holds.

    Attributes:
        kind: ``binary`` ({0, 1}), ``integer`` (integer-valued) or ``real``.
        rate: Fraction of non-zero entries.
        magnitude: Mean ``|x|`` over all entries (equals ``rate`` for binary input).
    """

    kind: str
    rate: float
    magnitude: float


@torch.no_grad()
def describe_input(x: torch.Tensor) -> InputStats:
    """Classify an activation tensor as binary, integer or real, with its non-zero fraction."""
    n = x.numel()
    if n == 0:
        return InputStats("binary", 0.0, 0.0)
    if x.dtype == torch.bool:
        rate = float(torch.count_nonzero(x)) / n
        return InputStats("binary", rate, rate)
    if x.is_complex():
        return InputStats("real", 1.0, float("nan"))
    rate = float(torch.count_nonzero(x)) / n
    xf = x if x.is_floating_point() else x.to(torch.float64)
    # inf - trunc(inf) is nan, so a non-finite tensor is never "integer".
    if bool(torch.all(xf - torch.trunc(xf) == 0)):
        lo, hi = torch.aminmax(xf)
        magnitude = float(xf.abs().sum(dtype=torch.float64)) / n
        if float(lo) >= 0.0 and float(hi) <= 1.0:
            return InputStats("binary", rate, rate)
        return InputStats("integer", rate, magnitude)
    return InputStats("real", rate, float("nan"))


@dataclass
class RowCounts:
    """Counts of one (module, op) pair, summed over every call and batch.

    Matmul rows are keyed by the op's occurrence within one call of the module (``bmm``,
    ``bmm#1``...), so attention's ``Q K^T`` and ``A V`` stay separate rows; other ops are summed per
    module and aten op.

    Attributes:
        module: Innermost module name (``<root>`` for the model's own ``forward``).
        op: Aten op name (with ``#k`` for the k-th same-named matmul of one module call).
        kind: ``matmul``, ``conv``, ``attention``, ``norm``, ``softmax``, ``activation``,
            ``elementwise``, ``reduction``, ``membrane`` or ``embedding``.
        calls: Number of calls.
        macs: Dense MACs of every call.
        macs_real: MACs of calls whose input was real-valued (priced as MACs).
        macs_binary: MACs of calls whose input was binary.
        acs_binary: ``Σ MACs × fr`` over binary-input calls.
        macs_integer: MACs of calls whose input was integer-valued (not binary).
        nonzero_integer: ``Σ MACs × fr`` over integer-input calls (what the paper convention
            counts as synaptic operations).
        magnitude_integer: ``Σ MACs × mean|x|`` over integer-input calls (one accumulate per unit
            of count, the full accounting).
        other_ops: Float ops other than the matmul's MACs (bias adds, norms, neurons...).
        input_kinds: Input kinds seen over the calls.
    """

    module: str
    op: str
    kind: str
    calls: int = 0
    macs: float = 0.0
    macs_real: float = 0.0
    macs_binary: float = 0.0
    acs_binary: float = 0.0
    macs_integer: float = 0.0
    nonzero_integer: float = 0.0
    magnitude_integer: float = 0.0
    other_ops: float = 0.0
    input_kinds: set[str] = field(default_factory=set)

    def add_matmul(self, macs: float, stats: InputStats | None) -> None:
        """Add one matmul call of ``macs`` dense MACs whose spike/real input is ``stats``."""
        self.macs += macs
        kind = "real" if stats is None else stats.kind
        self.input_kinds.add(kind)
        if kind == "binary":
            self.macs_binary += macs
            self.acs_binary += macs * stats.rate
        elif kind == "integer":
            self.macs_integer += macs
            self.nonzero_integer += macs * stats.rate
            self.magnitude_integer += macs * stats.magnitude
        else:
            self.macs_real += macs


@dataclass
class OpCounts:
    """Everything an :class:`OpCounter` recorded (totals over all counted forwards).

    Attributes:
        rows: Per (module, op) counts in order of first execution.
        spikes: Non-zero outputs per spiking module, at real tokens (the ``attention_mask``
            keyword of the model's forward says which; every position when it is not given).
        spike_elements: Output elements per spiking module, at real tokens.
        spikes_padded: Non-zero outputs per spiking module at every position run.
        spike_elements_padded: Output elements per spiking module at every position run.
        uncounted: Aten ops seen that have no cost rule, with their call counts.
        num_samples: Sequences counted (set by the caller, e.g.
            :func:`~spikeformers.energy.estimate`).
        num_tokens: Real (unpadded) tokens counted, when known.
        num_positions: Token positions run, padding included, when known.
    """

    rows: list[RowCounts] = field(default_factory=list)
    spikes: dict[str, float] = field(default_factory=dict)
    spike_elements: dict[str, int] = field(default_factory=dict)
    spikes_padded: dict[str, float] = field(default_factory=dict)
    spike_elements_padded: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)
    num_samples: int = 0
    num_tokens: int | None = None
    num_positions: int | None = None

    def firing_rates(self) -> dict[str, float]:
        """Output firing rate (non-zero fraction) of every spiking module over real tokens."""
        return {k: self.spikes[k] / max(self.spike_elements[k], 1) for k in self.spikes}

    def firing_rate_padded(self) -> float | None:
        """All spikes over all outputs of the spiking modules at every position run (padding
        included), or ``None`` without spiking modules."""
        n = sum(self.spike_elements_padded.values())
        return sum(self.spikes_padded.values()) / n if n else None


@dataclass
class _Frame:
    name: str
    spiking: bool
    seen: Counter = field(default_factory=Counter)


def _prod(xs) -> int:
    return math.prod(int(v) for v in xs)


def _first_tensor(args: Any, kwargs: dict | None = None) -> torch.Tensor | None:
    for a in (*args, *(kwargs or {}).values()):
        if isinstance(a, torch.Tensor):
            return a
    return None


class OpCounter(LiteralAlgorithmMode):
    """Count the operations of every forward run inside ``with OpCounter(model) as counter:``.

    Example::

        with torch.no_grad(), OpCounter(model) as counter:
            model(input_ids, attention_mask=mask)
        counts = counter.counts  # OpCounts; price them with spikeformers.energy.price

    Ops are attributed to modules of ``model`` (hooks are installed on entry and removed on exit);
    ops run outside any of its modules go to ``<root>``. See the module docstring for the rules.

    Args:
        model: The model whose modules name the rows and whose parameters and buffers are the
            weights (never inspected as spike inputs).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.counts = OpCounts()
        self._rows: dict[tuple[str, str], RowCounts] = {}
        self._stack: list[_Frame] = []
        self._spiking_depth = 0
        self._paused = False
        self._handles: list[Any] = []
        self._weights: set[int] = set()
        self._layouts: dict[str, str | None] = {}
        self._mask: torch.Tensor | None = None
        self._uncounted: Counter = Counter()

    # -- context ---------------------------------------------------------------------------------
    def __enter__(self) -> OpCounter:
        """Install the module hooks and start counting."""
        from spikeformers.evaluation import spike_layouts, spiking_modules

        self._weights = {
            t.untyped_storage().data_ptr()
            for t in (*self.model.parameters(), *self.model.buffers())
            if t.numel()
        }
        spiking = {id(m) for _, m in spiking_modules(self.model)}
        self._layouts = spike_layouts(self.model)
        self._handles.append(
            self.model.register_forward_pre_hook(self._read_mask, with_kwargs=True)
        )
        for name, m in self.model.named_modules():
            frame_name = name or "<root>"
            is_spiking = id(m) in spiking
            self._handles.append(
                m.register_forward_pre_hook(
                    self._pre_hook(frame_name, is_spiking), with_kwargs=True
                )
            )
            self._handles.append(
                m.register_forward_hook(
                    self._post_hook(frame_name, is_spiking, name), always_call=True
                )
            )
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        """Stop counting, remove the hooks and finalise :attr:`counts`."""
        try:
            super().__exit__(*exc)
        finally:
            for h in self._handles:
                h.remove()
            self._handles.clear()
            self._stack.clear()
            self._spiking_depth = 0
            self.counts.rows = list(self._rows.values())
            self.counts.uncounted = dict(self._uncounted)

    # -- module stack ----------------------------------------------------------------------------
    def _read_mask(self, _m: nn.Module, _args: tuple, kwargs: dict) -> None:
        """Keep the forward's ``attention_mask`` ``[B, L]`` (``None``: no padding)."""
        mask = kwargs.get("attention_mask")
        self._paused = True
        try:
            self._mask = None if mask is None or bool(mask.all()) else mask
        finally:
            self._paused = False

    def _pre_hook(self, name: str, spiking: bool):
        def hook(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            self._stack.append(_Frame(name, spiking))
            if spiking:
                if self._spiking_depth == 0:
                    x = _first_tensor(args, kwargs)
                    if x is not None:
                        row = self._row(name, "membrane", "membrane")
                        row.calls += 1
                        row.other_ops += NEURON_OPS_PER_STEP * x.numel()
                self._spiking_depth += 1

        return hook

    def _count_spikes(self, name: str, raw: str, y: torch.Tensor) -> None:
        """Add a spiking module's output ``y`` to the counts (``raw``: its unprefixed name)."""
        from spikeformers.evaluation import real_token_spikes

        c = self.counts
        c.spikes_padded[name] = c.spikes_padded.get(name, 0.0) + float(torch.count_nonzero(y))
        c.spike_elements_padded[name] = c.spike_elements_padded.get(name, 0) + y.numel()
        nz, n = real_token_spikes(y, self._mask, self._layouts.get(raw), raw, nonzero=True)
        c.spikes[name] = c.spikes.get(name, 0.0) + float(nz)
        c.spike_elements[name] = c.spike_elements.get(name, 0) + round(float(n))

    def _post_hook(self, name: str, spiking: bool, raw: str = ""):
        def hook(_m: nn.Module, _args: tuple, out: Any) -> None:
            if self._stack and self._stack[-1].name == name:
                self._stack.pop()
            if spiking:
                self._spiking_depth = max(self._spiking_depth - 1, 0)
                y = (
                    out
                    if isinstance(out, torch.Tensor)
                    else _first_tensor(out if isinstance(out, tuple | list) else ())
                )
                if y is not None and self._spiking_depth == 0:
                    self._paused = True  # the hook's own ops are not the model's work
                    try:
                        self._count_spikes(name, raw, y.detach())
                    finally:
                        self._paused = False

        return hook

    def _row(self, module: str, op: str, kind: str) -> RowCounts:
        key = (module, op)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = RowCounts(module=module, op=op, kind=kind)
        return row

    # -- dispatch --------------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not self._paused:
            self._paused = True
            try:
                self._count(func.overloadpacket.__name__, args, kwargs, out)
            finally:
                self._paused = False
        return out

    def _is_weight(self, t: torch.Tensor) -> bool:
        try:
            return t.untyped_storage().data_ptr() in self._weights
        except (RuntimeError, NotImplementedError):
            return False

    def _spike_input(self, operands: list[torch.Tensor]) -> InputStats | None:
        """Stats of the operand that drives the accumulates, or ``None`` for a real-input MAC."""
        acts = [t for t in operands if isinstance(t, torch.Tensor) and not self._is_weight(t)]
        stats = [describe_input(t) for t in acts]
        binary = [s for s in stats if s.kind == "binary"]
        if binary:
            return min(binary, key=lambda s: s.rate)
        integer = [s for s in stats if s.kind == "integer"]
        if integer:
            return min(integer, key=lambda s: s.magnitude)
        return None

    def _count(self, name: str, args: tuple, kwargs: dict, out: Any) -> None:
        name = name.rstrip("_") if not name.startswith("__") else name
        frame = self._stack[-1] if self._stack else None
        module = frame.name if frame else "<root>"
        if name in _MATMUL or name.startswith("_scaled_dot_product"):
            self._count_matmul(name, module, frame, args, kwargs, out)
            return
        if self._spiking_depth > 0 or name in _FREE:
            # A neuron's elementwise work is its membrane update (counted once, on entry); data
            # movement is free.
            return
        y = out[0] if isinstance(out, tuple | list) else out
        x = _first_tensor(args, kwargs)
        if name == "embedding":
            self._add(module, name, "embedding", 0.0)
        elif name in _LAYER_NORM:
            self._add(module, "layer_norm", "norm", LAYER_NORM_OPS * x.numel())
        elif name in _BATCH_NORM:
            self._add(module, name, "norm", 2.0 * x.numel())  # eval mode: scale and shift
        elif name in _SOFTMAX:
            self._add(module, "softmax", "softmax", SOFTMAX_OPS * x.numel())
        elif name == "gelu":
            self._add(module, "gelu", "activation", GELU_OPS * x.numel())
        elif name in _TRANSCENDENTAL:
            self._add(module, name, "activation", TRANSCENDENTAL_OPS * x.numel())
        elif name in _ELEMENTWISE and isinstance(y, torch.Tensor):
            self._add(module, "elementwise", "elementwise", ELEMENTWISE_OPS * y.numel())
        elif name in _REDUCTIONS and x is not None:
            self._add(module, "reduction", "reduction", REDUCTION_OPS * x.numel())
        else:
            self._uncounted[name] += 1

    def _add(self, module: str, op: str, kind: str, ops: float) -> None:
        row = self._row(module, op, kind)
        row.calls += 1
        row.other_ops += ops

    def _matmul_row(self, frame: _Frame | None, module: str, op: str, kind: str) -> RowCounts:
        k = 0
        if frame is not None:
            k = frame.seen[op]
            frame.seen[op] += 1
        row = self._row(module, op if k == 0 else f"{op}#{k}", kind)
        row.calls += 1
        return row

    def _count_matmul(self, name, module, frame, args, kwargs, out) -> None:
        # One rule wherever the op runs, inside a neuron too (BPSN's temporal kernels are
        # convolutions of a real-valued input, priced as MACs; its reset count convolves spikes,
        # priced as ACs): the input operand decides, never the module.
        parts = _matmul_parts(name, args, kwargs, out)
        for op, kind, macs, operands, other in parts:
            row = self._matmul_row(frame, module, op, kind)
            row.add_matmul(macs, self._spike_input(operands))
            row.other_ops += other


def _matmul_parts(
    name: str, args: tuple, kwargs: dict, out: Any
) -> list[tuple[str, str, float, list[torch.Tensor], float]]:
    """``(op, kind, MACs, candidate spike operands, other float ops)`` of one matmul-like call."""
    y = out[0] if isinstance(out, tuple | list) else out
    if name.startswith("_scaled_dot_product"):
        q, k, v = args[:3]  # [..., L, E], [..., S, E], [..., S, Ev]
        batch, n_q, n_k = _prod(q.shape[:-2]), q.shape[-2], k.shape[-2]
        scores = float(batch * n_q * n_k)
        return [
            # scale + softmax of the scores go with Q K^T
            ("sdpa.qk", "attention", scores * q.shape[-1], [q, k], (SOFTMAX_OPS + 1.0) * scores),
            # The probabilities are real: only a binary V makes A V accumulate-only.
            ("sdpa.av", "attention", scores * v.shape[-1], [v], 0.0),
        ]
    if name in ("convolution", "_convolution"):
        # (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
        x, w, bias = args[0], args[1], args[2]
        transposed = bool(args[6]) if len(args) > 6 else bool(kwargs.get("transposed", False))
        per_output = w.shape[1] * _prod(w.shape[2:])  # (C_in / groups) * prod(kernel)
        macs = (x.numel() if transposed else y.numel()) * per_output
        other = float(y.numel()) if bias is not None else 0.0
        return [("convolution", "conv", float(macs), [x], other)]
    other = 0.0
    if name in ("addmm", "_addmm_activation", "baddbmm", "addmv"):
        a, b = args[1], args[2]
        other = float(y.numel())  # bias add
    else:  # mm, bmm, mv, dot, vdot
        a, b = args[0], args[1]
    if name in ("mm", "addmm", "_addmm_activation"):
        macs = a.shape[0] * a.shape[1] * b.shape[1]
    elif name in ("bmm", "baddbmm"):
        macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    elif name in ("mv", "addmv"):
        macs = a.shape[0] * a.shape[1]
    else:
        macs = a.numel()
    if name == "_addmm_activation":
        gelu = bool(kwargs.get("use_gelu", args[5] if len(args) > 5 else False))
        other += (GELU_OPS if gelu else ELEMENTWISE_OPS) * y.numel()
    return [(name, "matmul", float(macs), [a, b], other)]
