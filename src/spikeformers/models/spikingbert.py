r"""SpikingBERT: an equilibrium spiking language model trained by implicit differentiation.

Bal & Sengupta, "SpikingBERT: Distilling BERT to Train Spiking Language Models Using Implicit
Differentiation", AAAI 2024, https://arxiv.org/abs/2308.10873. Training rule from Xiao et al.,
"Training Feedback Spiking Neural Networks by Implicit Differentiation on the Equilibrium State"
(IDE-FSNN), NeurIPS 2021, https://arxiv.org/abs/2109.14247.

Network (``B`` batch, ``L`` tokens, ``D`` width, ``F`` FFN width, ``H`` heads, ``d_h = D/H``).
The BERT embedding ``x = LN(word + position + token type)`` ``[B, L, D]`` is injected as a
constant current at every step. Encoder ``l`` has six populations of IF neurons (reset by
subtraction, threshold ``V_th``, leak ``λ``; :mod:`spikeformers.neurons.if_node`). Within a time
step all layers update in order; with input ``in_t`` (``x`` for layer 0, the previous layer's
output spikes otherwise, plus the optional feedback current ``W_fb s_o[t-1]``)::

    K:  s_k = IF(W_k in_t + b_k)                      V:  s_v = IF(W_v in_t + b_v)
    Q_t = W_q in_t + b_q (a current, not spikes);  P_t = softmax(Q_t s_k^T / sqrt(d_h) + mask)
    A:  s_a = IF(P_t s_v)                             (attention output, per head)
    S:  s_s = IF(LN(W_ao s_a + b_ao + in_t))          (self-output: dense + residual spikes)
    I:  s_i = IF(GELU(W_i s_s + b_i))                 (intermediate)
    O:  s_o = IF(LN(W_2 s_i + b_2 + s_s))             (output: dense + residual spikes)

The outputs are the average spike rates ``a = (1/T) Σ_t s[t]`` of each population; the classifier
reads the last layer's ``O`` rates, averaged over real tokens (``pooling="mean"``, default) or at
[CLS] (``pooling="cls"``, the paper's). The simulation runs under ``torch.no_grad()``
(memory flat in ``T``) for ``time_steps`` steps, or until no rate moves by more than ``sim_tol``
between checks.

Equilibrium map (per layer ``l``, on the packed rates ``z = [a_k, a_v, a_a, a_s, a_i, a_o]``
``[B, L, 5D + F]``; ``r(I) = clamp(I / V_th, 0, 1)``, the IF neuron's rate for a mean current
``I``; ``h`` is the previous layer's output rate, or ``x``)::

    in = h + W_fb a_o                                     (feedback term only if feedback=True)
    F_k = r(W_k in + b_k)          F_v = r(W_v in + b_v)
    F_a = r(softmax((W_q in + b_q) â_k^T / sqrt(d_h) + mask) â_v)
    F_s = r(LN(W_ao â_a + b_ao + in))
    F_i = r(GELU(W_i â_s + b_i))
    F_o = r(LN(W_2 â_i + b_2 + â_s))

where the hatted inputs are, with ``equilibrium="local"``, read from ``z`` itself (each population
is evaluated at the rates of its own inputs, i.e. at the SNN's operating point), and with
``equilibrium="chain"`` the values just computed in the same pass (the rate network recomputed
from ``in``). Both have the same fixed points. ``F`` depends on ``z`` through the hatted inputs
(``local``) and through the feedback ``W_fb a_o`` (``feedback=True``).

Gradients (``grad_mode="implicit"``): per layer the SNN's rates ``a*`` are re-attached to autograd
with :func:`~spikeformers.solvers.attach_implicit_grad`, which solves the adjoint
``β = β J_F + dL/da*`` (``J_F = ∂F/∂z`` at ``a*``) with the configured solver and sends ``β``
through ``∂F/∂θ`` and ``∂F/∂h`` (into the previous layer's adjoint). Chaining the per-layer
implicit functions is exactly the IFT of the whole stacked equilibrium (its Jacobian is block
lower-triangular across layers). Forward values stay the SNN's own rates (the gradient is
attached as ``a* + (F(a*) - F(a*).detach())``).

``grad_mode="no_feedback"`` is the public code's shortcut: ``J_F`` taken as 0 for the ``chain``
map, i.e. plain backprop through the rate network recomputed from each layer's input, with the
feedback input held at the SNN's rates. Without feedback it equals the implicit gradient exactly;
with feedback it is wrong (it ignores the loop).

``forward_mode="rate"`` replaces the simulation by a forward solve of ``z = F(z)`` (the
equilibrium the SNN approaches as ``T -> ∞``, up to the nonlinear populations' gap below); tests
use it to check the implicit gradient against finite differences.

Known gap: softmax, LayerNorm and GELU act on instantaneous currents at every step, so the mean of
``LN(current)`` is not ``LN(mean current)`` (Jensen). Only K and V (linear in their input) are
guaranteed to approach ``F`` of the SNN's rates as ``T`` grows, with error ``O(1/T)``; the
LayerNorm populations S and O keep a gap that does not vanish (measured and recorded by
``tests/models/test_spikingbert.py``), and A and I need not converge either.
``extras["equilibrium_residual"]`` reports ``max |F(a) - a|`` per layer during training.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import torch
from torch import nn
from torch.nn import functional as F

from spikeformers.layers.pooling import masked_mean
from spikeformers.models.base import (
    ClassifierOutput,
    ModelConfig,
    SpikingModel,
    classification_loss,
)
from spikeformers.neurons.if_node import IFNode, check_if_args
from spikeformers.registry import register_family
from spikeformers.solvers import AdjointStats, SolverStats, attach_implicit_grad, get_solver
from spikeformers.solvers.implicit import GradMode

__all__ = [
    "POPULATIONS",
    "Populations",
    "SpikingBertConfig",
    "SpikingBertEmbeddings",
    "SpikingBertForSequenceClassification",
    "SpikingBertLayer",
]

Equilibrium = Literal["local", "chain"]
ForwardMode = Literal["snn", "rate"]

POPULATIONS = ("k", "v", "a", "s", "i", "o")
"""Population names in packing order: key, value, attention output, self-output, intermediate,
output."""


@dataclass(frozen=True, kw_only=True)
class SpikingBertConfig(ModelConfig):
    """SpikingBERT hyper-parameters (defaults: the paper's 4 x 768 student)."""

    model_type = "spikingbert"

    hidden_size: int = 768
    """Width ``D``."""
    num_layers: int = 4
    """Number of encoder layers."""
    num_heads: int = 12
    """Attention heads (``D`` must be divisible by it)."""
    intermediate_size: int | None = None
    """FFN width ``F``; ``None`` means ``4 * hidden_size``."""
    max_position_embeddings: int = 512
    """Longest sequence with a learned position."""
    type_vocab_size: int = 2
    """Token-type (segment) vocabulary, as BERT's; ``forward`` uses segment 0."""
    layer_norm_eps: float = 1e-12
    """LayerNorm epsilon (BERT's)."""
    time_steps: int = 32
    """Simulation length ``T`` (the upper bound when ``sim_tol > 0``). The public code runs 100;
    the paper reports ~16 steps already give near-best SST-2 accuracy."""
    sim_tol: float = 0.0
    """Stop the simulation early once no average rate changed by more than this between two
    checks; 0 always runs ``time_steps`` steps."""
    sim_check_every: int = 8
    """Steps between early-stopping checks (each check is one host sync)."""
    v_threshold: float = 1.0
    """Firing threshold ``V_th`` of every neuron."""
    leak: float = 1.0
    """Membrane leak ``λ`` in ``(0, 1]``; 1 is IF. The rate equilibrium is exact only for 1."""
    feedback: bool = False
    """Add a learned feedback current ``W_fb a_o`` from each layer's output population back into
    its own input (the IDE-FSNN feedback connection, layer-local)."""
    equilibrium: Equilibrium = "local"
    """Map whose IFT gradient is used: ``local`` (each population at its inputs' rates) or
    ``chain`` (the rate network recomputed from the layer input). Same fixed points."""
    grad_mode: GradMode = "implicit"
    """``implicit`` (solve the adjoint) or ``no_feedback`` (``J_F = 0`` on the chain map: the
    public code's one-step gradient)."""
    forward_mode: ForwardMode = "snn"
    """How the rates are found: ``snn`` (simulate ``T`` steps) or ``rate`` (solve ``z = F(z)``)."""
    solver: str = "fixed_point"
    """Adjoint solver: ``fixed_point``, ``anderson`` or ``broyden``. Without feedback the
    ``local`` map's ``J_F`` is nilpotent and fixed-point iteration is exact after 5 products;
    with ``feedback=True`` prefer ``anderson`` or ``broyden`` (fixed-point iteration diverges
    once the loop's spectral radius reaches 1)."""
    adjoint_max_iter: int = 40
    """Vector-Jacobian products per adjoint solve (per layer)."""
    adjoint_tol: float = 1e-5
    """Relative-residual tolerance of the adjoint solve."""
    forward_solver: str = "anderson"
    """Solver of ``z = F(z)`` when ``forward_mode="rate"``."""
    forward_max_iter: int = 60
    """Iterations of the forward solve (``forward_mode="rate"``)."""
    forward_tol: float = 1e-6
    """Tolerance of the forward solve (``forward_mode="rate"``)."""
    pooling: Literal["mean", "cls"] = "mean"
    """Classifier input: ``mean`` of the last layer's output rates over real tokens (default),
    or the ``cls`` token's rate (the paper's, BERT's convention). Which is better under the
    two-step task recipe is not measured yet (docs/RESULTS.md)."""
    dropout: float = 0.0
    """Dropout on the classifier input (train mode only; the rate network has none, since
    dropout would change the equilibrium between forward and backward)."""
    initializer_range: float = 0.02
    """Std of the normal initialisation of linear and embedding weights (BERT's)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_layers < 1 or self.hidden_size < 1 or self.num_heads < 1:
            raise ValueError("num_layers, hidden_size and num_heads must be >= 1")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.intermediate_size is not None and self.intermediate_size < 1:
            raise ValueError(f"intermediate_size must be >= 1, got {self.intermediate_size}")
        if self.time_steps < 1 or self.sim_check_every < 1:
            raise ValueError("time_steps and sim_check_every must be >= 1")
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.sim_tol < 0:
            raise ValueError(f"sim_tol must be >= 0, got {self.sim_tol}")
        check_if_args(v_threshold=self.v_threshold, leak=self.leak)
        for name, allowed in (
            ("equilibrium", Equilibrium),
            ("grad_mode", GradMode),
            ("forward_mode", ForwardMode),
        ):
            if getattr(self, name) not in get_args(allowed):
                raise ValueError(
                    f"{name} must be one of {list(get_args(allowed))}, got {getattr(self, name)!r}"
                )
        get_solver(self.solver)  # raises with the known names
        get_solver(self.forward_solver)
        if self.adjoint_max_iter < 1 or self.forward_max_iter < 1:
            raise ValueError("adjoint_max_iter and forward_max_iter must be >= 1")

    @property
    def ffn_size(self) -> int:
        """The FFN width ``F``."""
        return self.intermediate_size or 4 * self.hidden_size


class Populations(NamedTuple):
    """One layer's six populations: spikes of one step, or rates.

    Each is ``[B, L, D]``, except ``i`` which is ``[B, L, F]``.
    """

    k: torch.Tensor
    v: torch.Tensor
    a: torch.Tensor
    s: torch.Tensor
    i: torch.Tensor
    o: torch.Tensor


Fire = Callable[[str, torch.Tensor], torch.Tensor]
"""``fire(population, current) -> activity``: IF spikes in the simulation, ``clamp(I/V_th, 0, 1)``
in the rate map."""


class SpikingBertEmbeddings(nn.Module):
    """BERT's embedding: ``LN(word + position + token type 0)``; ``[B, L] -> [B, L, D]``."""

    def __init__(self, cfg: SpikingBertConfig):
        super().__init__()
        d = cfg.hidden_size
        self.max_positions = cfg.max_position_embeddings
        self.word_embeddings = nn.Embedding(cfg.vocab_size, d, padding_idx=cfg.pad_token_id)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, d)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, d)
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # noqa: D102
        n = input_ids.shape[1]
        if n > self.max_positions:
            raise ValueError(
                f"sequence length {n} exceeds max_position_embeddings {self.max_positions}"
            )
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:n]
        return self.norm(x + self.token_type_embeddings.weight[0])  # (B, L, D)


class SpikingBertLayer(nn.Module):
    """One encoder: six IF populations, the rate map ``F`` and the attention-score readout.

    The same :meth:`populations` code runs one simulation step (``fire`` = IF neurons) and the
    rate map (``fire`` = ``clamp(I / V_th, 0, 1)``), so the SNN and its equilibrium cannot drift
    apart.
    """

    def __init__(self, cfg: SpikingBertConfig):
        super().__init__()
        d, f = cfg.hidden_size, cfg.ffn_size
        self.num_heads = cfg.num_heads
        self.head_dim = d // cfg.num_heads
        self.v_threshold = cfg.v_threshold
        self.sizes = (d, d, d, d, f, d)  # packing widths, in POPULATIONS order
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.intermediate = nn.Linear(d, f)
        self.output = nn.Linear(f, d)
        self.out_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.feedback = nn.Linear(d, d, bias=False) if cfg.feedback else None
        self.neurons = nn.ModuleDict(
            {p: IFNode(v_threshold=cfg.v_threshold, leak=cfg.leak) for p in POPULATIONS}
        )

    # -- packing ---------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Width ``5D + F`` of the packed rates."""
        return sum(self.sizes)

    def pack(self, pops: Populations) -> torch.Tensor:
        """``Populations`` -> ``[B, L, 5D + F]``."""
        return torch.cat(tuple(pops), dim=-1)

    def unpack(self, z: torch.Tensor) -> Populations:
        """``[B, L, 5D + F]`` -> ``Populations`` (views)."""
        return Populations(*z.split(self.sizes, dim=-1))

    # -- dynamics ----------------------------------------------------------------------------
    def layer_input(self, h: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """Input current ``h + W_fb o`` (just ``h`` without feedback); ``[B, L, D]``."""
        return h if self.feedback is None else h + self.feedback(o)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, dh)

    def scores(self, inp: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Pre-softmax scores ``(W_q in + b_q) k^T / sqrt(d_h)``, ``[B, H, L, L]``, unmasked."""
        q = self._heads(self.query(inp))
        return q @ self._heads(k).transpose(-2, -1) / math.sqrt(self.head_dim)

    def populations(
        self,
        inp: torch.Tensor,
        bias: torch.Tensor | None,
        fire: Fire,
        given: Populations | None = None,
    ) -> Populations:
        """Drive the six populations from the input current ``inp`` ``[B, L, D]``.

        Args:
            inp: Layer input current (embedding or spikes/rates of the previous layer, plus
                feedback).
            bias: Additive key mask ``[B, 1, 1, L]`` (0 or a large negative), or ``None``.
            fire: Turns a population's current into its activity (spikes or rates).
            given: Where each population reads its inputs from. ``None``: the activities just
                computed in this call (a simulation step; the ``chain`` map). Otherwise these
                populations (the ``local`` map: every population at its inputs' given rates).

        Returns:
            The six populations' activities.
        """
        k = fire("k", self.key(inp))
        v = fire("v", self.value(inp))
        src_k, src_v = (k, v) if given is None else (given.k, given.v)
        scores = self.scores(inp, src_k)
        if bias is not None:
            scores = scores + bias
        ctx = scores.softmax(-1) @ self._heads(src_v)  # (B, H, L, dh)
        b, _, n, _ = ctx.shape
        a = fire("a", ctx.transpose(1, 2).reshape(b, n, -1))  # (B, L, D)
        s = fire("s", self.attn_norm(self.attn_out(a if given is None else given.a) + inp))
        src_s = s if given is None else given.s
        i = fire("i", F.gelu(self.intermediate(src_s)))
        o = fire("o", self.out_norm(self.output(i if given is None else given.i) + src_s))
        return Populations(k, v, a, s, i, o)

    def rate(self, name: str, current: torch.Tensor) -> torch.Tensor:
        """The IF rate ``clamp(I / V_th, 0, 1)`` of a mean current (``name`` is unused)."""
        del name
        return (current / self.v_threshold).clamp(0.0, 1.0)

    def rate_map(
        self, z: torch.Tensor, h: torch.Tensor, bias: torch.Tensor | None, *, local: bool
    ) -> torch.Tensor:
        """The equilibrium map ``F(z; h)``: packed rates ``[B, L, 5D + F]`` in and out.

        Args:
            z: Packed rates of this layer.
            h: Input rates of the previous layer (or the embedding) ``[B, L, D]``.
            bias: Additive key mask ``[B, 1, 1, L]`` or ``None``.
            local: ``True`` for the ``local`` map, ``False`` for the ``chain`` map.
        """
        state = self.unpack(z)
        inp = self.layer_input(h, state.o)
        return self.pack(self.populations(inp, bias, self.rate, state if local else None))


class SpikingBertForSequenceClassification(SpikingModel):
    """SpikingBERT with a classifier on the last layer's rates (token mean, or [CLS]).

    See the module docstring."""

    config_class = SpikingBertConfig
    spike_layouts = (("*", "BLD"),)  # one IF call per simulation step, each [B, L, width]

    def __init__(self, config: SpikingBertConfig):
        super().__init__(config)
        cfg = config
        self.embeddings = SpikingBertEmbeddings(cfg)
        self.layers = nn.ModuleList(SpikingBertLayer(cfg) for _ in range(cfg.num_layers))
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.apply(self._init_weights)

    @classmethod
    def tiny_config(cls) -> dict:  # noqa: D102
        return dict(
            num_layers=2, hidden_size=32, num_heads=4, time_steps=2, max_position_embeddings=64
        )

    def get_input_embeddings(self) -> nn.Embedding:  # noqa: D102
        return self.embeddings.word_embeddings

    @staticmethod
    def attention_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        """``[B, L]`` 1/0 mask -> additive key bias ``[B, 1, 1, L]``.

        Padded keys get the dtype's minimum, so their attention weight is exactly zero.
        """
        if mask is None:
            return None
        return (1.0 - mask.to(dtype))[:, None, None, :] * torch.finfo(dtype).min

    # -- finding the rates (no graph) --------------------------------------------------------
    @torch.no_grad()
    def simulate(
        self, x: torch.Tensor, bias: torch.Tensor | None, *, time_steps: int | None = None
    ) -> tuple[list[torch.Tensor], int]:
        """Run the spiking network with ``x`` as a constant input current.

        Memory is independent of ``T``: per population one membrane and one spike counter.

        Args:
            x: Embedding ``[B, L, D]``.
            bias: Additive key mask ``[B, 1, 1, L]`` or ``None``.
            time_steps: Overrides ``config.time_steps``.

        Returns:
            ``(rates, steps)``: per layer the packed average rates ``[B, L, 5D + F]`` and the
            number of steps run (fewer than ``T`` when ``sim_tol`` stopped it early).
        """
        cfg = self.config
        T = cfg.time_steps if time_steps is None else time_steps
        b, n, _ = x.shape
        membranes = [
            {p: x.new_zeros(b, n, w) for p, w in zip(POPULATIONS, layer.sizes, strict=True)}
            for layer in self.layers
        ]
        counts = [x.new_zeros(b, n, layer.state_size) for layer in self.layers]
        last_o = [x.new_zeros(b, n, cfg.hidden_size) for _ in self.layers]  # feedback source
        snapshot: list[torch.Tensor] | None = None
        steps = 0
        for t in range(T):
            h = x
            for idx, layer in enumerate(self.layers):
                fire = functools.partial(_fire_if, layer.neurons, membranes[idx])
                pops = layer.populations(layer.layer_input(h, last_o[idx]), bias, fire)
                counts[idx] += layer.pack(pops)
                last_o[idx] = h = pops.o
            steps = t + 1
            if cfg.sim_tol > 0 and steps % cfg.sim_check_every == 0:
                rates = [c / steps for c in counts]
                if snapshot is not None:
                    change = max((r - s).abs().max() for r, s in zip(rates, snapshot, strict=True))
                    if change.item() <= cfg.sim_tol:
                        break
                snapshot = rates
        return [c / steps for c in counts], steps

    @torch.no_grad()
    def equilibrium_gaps(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        time_steps: int | None = None,
    ) -> dict[str, float]:
        """How far the simulated rates are from the rate map, per population.

        Runs the SNN for ``time_steps`` steps and returns, over all layers and real tokens, the
        mean and max of ``|F_local(a) - a|`` for each population (keys ``k_mean``, ``k_max``,
        ... ``o_max``). ``F_local`` evaluates each population at the SNN's own input rates, so for
        K and V (linear in their input) the gap is the IF neuron's ``u[T] / (T V_th)`` and falls
        like ``1/T``; the LayerNorm populations S and O keep a gap (the mean of ``LN(current)``
        is not ``LN`` of the mean current).

        Shapes: ``input_ids [B, L]``, ``attention_mask [B, L]`` (1 real, 0 padding) or ``None``.
        """
        x = self.embeddings(input_ids)
        bias = self.attention_bias(attention_mask, x.dtype)
        rates, _ = self.simulate(x, bias, time_steps=time_steps)
        real = (
            torch.ones(input_ids.shape, dtype=torch.bool, device=x.device)
            if attention_mask is None
            else attention_mask.bool()
        )
        errs: dict[str, list[torch.Tensor]] = {p: [] for p in POPULATIONS}
        h = x
        for layer, z in zip(self.layers, rates, strict=True):
            gap = (layer.rate_map(z, h, bias, local=True) - z).abs()
            for p, e in zip(POPULATIONS, layer.unpack(gap), strict=True):
                errs[p].append(e[real].flatten())
            h = layer.unpack(z).o
        out = {}
        for p, es in errs.items():
            e = torch.cat(es)
            out[f"{p}_mean"], out[f"{p}_max"] = e.mean().item(), e.max().item()
        return out

    @torch.no_grad()
    def solve_equilibrium(
        self, x: torch.Tensor, bias: torch.Tensor | None
    ) -> tuple[list[torch.Tensor], list[SolverStats]]:
        """Solve ``z = F(z)`` layer by layer with ``config.forward_solver``.

        Uses the ``chain`` map (same fixed points as ``local``, no sweeps needed to propagate
        through a layer).

        Returns:
            Per layer the packed fixed-point rates ``[B, L, 5D + F]`` and the solver stats.
        """
        cfg = self.config
        solve = get_solver(cfg.forward_solver)
        rates, stats = [], []
        h = x
        for layer in self.layers:
            f = functools.partial(layer.rate_map, h=h, bias=bias, local=False)
            z0 = x.new_zeros(*x.shape[:2], layer.state_size)
            z, st = solve(f, z0, max_iter=cfg.forward_max_iter, tol=cfg.forward_tol)
            rates.append(z)
            stats.append(st)
            h = layer.unpack(z).o
        return rates, stats

    # -- the model -----------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> ClassifierOutput:
        """Classify token sequences.

        Args:
            input_ids: ``[B, L]`` token ids.
            attention_mask: ``[B, L]``, 1 for real tokens and 0 for padding (padded keys get
                zero attention; padded positions are still simulated).
            labels: ``[B]`` class ids (or floats for regression); adds ``loss``.
            output_hidden_states: Also return the per-layer distillation features
                (``hidden_states`` and ``attentions``).

        Returns:
            ``ClassifierOutput`` with ``logits [B, C]``; when ``output_hidden_states``,
            ``hidden_states``: per layer the output population's rates ``[B, L, D]``, and
            ``attentions``: per layer the pre-softmax scores ``[B, H, L, L]`` at the rates
            (unmasked); ``extras``: ``spike_rates``
            (``[num_layers, 6]`` mean rate per population), ``sim_steps`` (``snn``) or
            ``forward_solver`` (``rate``), and when gradients are tracked ``adjoint`` (one
            :class:`~spikeformers.solvers.AdjointStats` per layer, filled by ``backward()``) and
            ``equilibrium_residual`` (``[num_layers]``, ``max |F(a) - a|`` at the rates).
        """
        cfg = self.config
        x = self.embeddings(input_ids)  # (B, L, D)
        bias = self.attention_bias(attention_mask, x.dtype)
        extras: dict = {}
        if cfg.forward_mode == "snn":
            rates, extras["sim_steps"] = self.simulate(x.detach(), bias)
        else:
            rates, extras["forward_solver"] = self.solve_equilibrium(x.detach(), bias)
        extras["spike_rates"] = self._population_means(rates)
        track = torch.is_grad_enabled()
        if track:
            extras["adjoint"], residuals = [], []
        hidden, attentions = [], []
        h = x
        for layer, z_star in zip(self.layers, rates, strict=True):
            if track:
                stats = AdjointStats()
                z, residual = self._attach(layer, z_star, h, bias, stats)
                extras["adjoint"].append(stats)
                residuals.append(residual)
            else:
                z = z_star
            pops = layer.unpack(z)
            if output_hidden_states:
                attentions.append(layer.scores(layer.layer_input(h, pops.o), pops.k))
                hidden.append(pops.o)
            h = pops.o
        if track:
            extras["equilibrium_residual"] = torch.stack(residuals)
        logits = self.classifier(self.dropout(self._pool(h, attention_mask)))  # (B, C)
        loss = classification_loss(logits, labels) if labels is not None else None
        return ClassifierOutput(
            logits=logits, loss=loss, hidden_states=hidden, attentions=attentions, extras=extras
        )

    def _pool(self, h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """``[B, L, D]`` last-layer rates -> ``[B, D]``: the [CLS] rate or the masked token mean."""
        if self.config.pooling == "cls":
            return h[:, 0]
        return masked_mean(h, mask, dim=1)

    def _population_means(self, rates: list[torch.Tensor]) -> torch.Tensor:
        """Mean rate of every population, ``[num_layers, 6]`` (padding included)."""
        means = [
            torch.stack([p.mean() for p in layer.unpack(z)])
            for layer, z in zip(self.layers, rates, strict=True)
        ]
        return torch.stack(means)

    def _attach(
        self,
        layer: SpikingBertLayer,
        z_star: torch.Tensor,
        h: torch.Tensor,
        bias: torch.Tensor | None,
        stats: AdjointStats,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Give the graph-free rates ``z_star`` the IFT gradient of the layer's map.

        Returns:
            ``(z, residual)``: ``z`` equals ``z_star`` in value and carries the gradient;
            ``residual = max |F(z*) - z*|`` (detached).
        """
        cfg = self.config
        local = cfg.equilibrium == "local" and cfg.grad_mode == "implicit"
        f = functools.partial(layer.rate_map, h=h, bias=bias, local=local)
        fz = attach_implicit_grad(
            f,
            z_star,
            mode=cfg.grad_mode,
            solver=cfg.solver,
            max_iter=cfg.adjoint_max_iter,
            tol=cfg.adjoint_tol,
            stats=stats,
        )
        residual = (fz.detach() - z_star).abs().amax()
        # Value: the rates found (SNN or solver); gradient: the implicit one through fz.
        return z_star + (fz - fz.detach()), residual


def _fire_if(
    neurons: nn.ModuleDict, membranes: dict[str, torch.Tensor], name: str, current: torch.Tensor
) -> torch.Tensor:
    """One IF step of population ``name`` (membrane updated in place)."""
    return neurons[name](current, membranes[name])


register_family(
    SpikingBertForSequenceClassification,
    variants={
        # the paper's size: 4 layers x 768, 12 heads, FFN 3072, ~52M parameters
        "spikingbert": (
            "SpikingBERT 4x768, 12 heads, FFN 3072 (the paper's), IF neurons, T=32",
            {},
        ),
        # the width of the offline MiniLM teacher, so no projection is needed
        "spikingbert-mini": (
            "SpikingBERT 4x384, 12 heads, FFN 1536 (MiniLM-L6 width)",
            {"hidden_size": 384, "num_heads": 12},
        ),
        # the shape of TinyBERT-4 (SpikingBERT's code base)
        "spikingbert-tiny": (
            "SpikingBERT 4x312, 12 heads, FFN 1200 (TinyBERT-4's shape)",
            {"hidden_size": 312, "num_heads": 12, "intermediate_size": 1200},
        ),
    },
)
