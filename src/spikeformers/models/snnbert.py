"""SNN-BERT: a directly trained spiking BERT with individual coding and parallel neurons.

Su et al., "SNN-BERT: Training-efficient Spiking Neural Networks for energy-efficient BERT",
Neural Networks 180 (2024) 106630, https://doi.org/10.1016/j.neunet.2024.106630.

Only the paper's abstract is public. What it states: under *individual coding* token ``t`` enters
the network once, at time step ``t`` (the number of time steps equals the number of tokens, where
SpikeBERT re-enters every token at each of ``T = 4`` steps); a serial LIF would then need ``L``
sequential steps per layer, so the paper's Bidirectional Parallel Spiking Neuron (BPSN) computes
all steps at once, handles variable lengths and fuses both directions in time.

DESIGN (this project's reconstruction, NOT the paper's architecture, which is not public; see
``shared/spec/snnbert.md``). Tensors are ``[B, L, D]`` throughout: the neuron's time axis *is*
the token axis (``T = L``), there is no separate ``T`` axis. The model:

1. token embedding + learned position -> LayerNorm -> spike encoding (the block neuron, or a
   memoryless Heaviside with ``encoder="heaviside"``);
2. ``num_layers`` blocks ``x = x + SSA(x); x = x + MLP(x)`` (additive residuals, as SpikeBERT);
3. softmax-free spiking self-attention over tokens: ``Q, K, V = N(LN(Linear(x)))`` per head,
   ``X' = N_attn(Q (K^T V) * scale)``, ``out = N(LN(Linear_o(X')))``; SpikeBERT's SSA without
   the ``T`` axis; padded keys and values are zeroed so padding adds nothing;
4. MLP ``Linear(D, rD) -> LN -> N -> Linear(rD, D) -> LN -> N``;
5. readout: final LN -> mean over real tokens -> linear classifier;
6. per-block feature transforms (``Linear(D, D) + LN`` of each block output) and score maps
   ``scale * Q K^T`` that exist only for distillation (computed when ``output_hidden_states``).

``N`` is the neuron, chosen by ``neuron``: ``"bpsn"`` (:class:`~spikeformers.neurons.BPSN`, all
tokens in parallel; ``reset_mode="graded"`` by default, a firing rate that grows with the input,
or the earlier all-or-none ``"passes"``, which configs saved before ``reset_mode`` existed
keep) or ``"lif"``, a serial multi-step LIF run over the token axis (the baseline the paper
compares against: ``L`` sequential steps per neuron layer). Every neuron receives the
padding mask: padded inputs are zeroed and padded outputs never spike, so padding never changes a
real token. Positions count real tokens (``cumsum(mask) - 1``), so left and right padding give the
same outputs. :func:`build_token_neuron` is the one place to add another neuron.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from spikeformers.layers.feature import FeatureTransform
from spikeformers.layers.packed import (
    MEMORY_SAVING,
    all_spiking,
    memory_saving_active,
    save_packed,
)
from spikeformers.layers.pooling import masked_mean
from spikeformers.layers.spiking import SpikingMLP
from spikeformers.models.base import (
    ClassifierOutput,
    ModelConfig,
    SpikingModel,
    classification_loss,
)
from spikeformers.neurons.base import SpikingModule
from spikeformers.neurons.bpsn import BPSN, resolve_reset_mode
from spikeformers.neurons.lif import LIF
from spikeformers.neurons.surrogate import build_surrogate
from spikeformers.registry import register_family

__all__ = [
    "HeavisideEncoder",
    "SnnBertConfig",
    "SnnBertForSequenceClassification",
    "TokenLIF",
    "build_token_neuron",
]

Neuron = Literal["bpsn", "lif"]


@dataclass(frozen=True, kw_only=True)
class SnnBertConfig(ModelConfig):
    """SNN-BERT hyper-parameters (a reconstruction: the paper's sizes and settings are unknown).

    There is no ``time_steps``: under individual coding the number of time steps is the length
    of each sequence.
    """

    model_type = "snnbert"

    hidden_size: int = 768
    """Width ``D``."""
    num_layers: int = 12
    """Number of spiking blocks."""
    num_heads: int = 12
    """Attention heads (``D`` must be divisible by it)."""
    mlp_ratio: float = 4.0
    """MLP width is ``mlp_ratio * D``."""
    max_position_embeddings: int = 512
    """Longest sequence (in real tokens) with a learned position."""
    neuron: Neuron = "bpsn"
    """``bpsn`` (parallel over tokens) or ``lif`` (serial LIF over the token axis, the baseline)."""
    encoder: Literal["neuron", "heaviside"] = "neuron"
    """Spike encoding of the embeddings: the block neuron over tokens, or a memoryless
    Heaviside at 0 (SpikeBERT's encoding)."""
    tau: float = 2.0
    """Membrane time constant (BPSN: kernel initialisation and reset decay; LIF: the leak)."""
    v_threshold: float = 0.5
    """(Initial) threshold of every neuron except the attention one. This project's choice: at
    SpikeBERT's 1.0 about 2% of the neurons fire at initialisation and the attention path is
    silent; at 0.5 it is 12-20% and attention is alive."""
    attn_v_threshold: float = 0.5
    """(Initial) threshold of the neuron after ``Q (K^T V)``."""
    attn_scale: float = 0.125
    """Fixed scale of ``Q (K^T V)`` (no softmax)."""
    kernel_size: int = 8
    """BPSN taps per direction (also the reach of its reset count)."""
    fusion_init: float = 0.5
    """BPSN initial weight of the causal direction, in ``(0, 1)``."""
    reset_mode: Literal["graded", "passes"] | None = None
    """BPSN spike generation: ``graded`` (a soft-reset IF on the charge's excess over the
    threshold, as a cumulative sum: graded rate on constant drive) or ``passes`` (the earlier
    reconstruction: parallel reset passes, all-or-none on constant drive). ``None`` resolves
    (:func:`~spikeformers.neurons.bpsn.resolve_reset_mode`) to ``passes`` when ``reset_passes``
    is set, so a ``config.json`` saved before this field existed (it lists ``reset_passes``)
    loads with its old neuron, and to ``graded`` otherwise."""
    reset_passes: int | None = None
    """BPSN ``passes`` mode only: parallel reset passes (``None``: 1; 0: a reset-free
    bidirectional PSN; keep it odd). Setting it with ``reset_mode="graded"`` is an error."""
    lif_reset: Literal["hard", "soft"] = "hard"
    """Reset of the ``lif`` neuron."""
    detach_reset: bool = True
    """Stop the gradient through the reset path (both neurons)."""
    surrogate: str = "atan"
    """Surrogate gradient name (``atan`` or ``sigmoid``)."""
    surrogate_alpha: float = 2.0
    """Surrogate sharpness."""
    dropout: float = 0.0
    """Dropout on the classifier input (train mode only)."""
    layer_norm_eps: float = 1e-5
    """LayerNorm epsilon."""
    memory_saving: str = "auto"
    """Training memory against time: ``on`` saves spike operands for backward as bytes and
    recomputes ``neuron(LayerNorm(.))`` in backward; ``off`` stores them as floats (faster on a
    CPU); ``auto``: on for an accelerator, off on the CPU. Same numbers either way."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_layers < 1 or self.hidden_size < 1 or self.num_heads < 1:
            raise ValueError("num_layers, hidden_size and num_heads must be >= 1")
        if self.memory_saving not in MEMORY_SAVING:
            raise ValueError(f"memory_saving must be one of {MEMORY_SAVING}")
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.neuron not in _NEURONS:
            raise ValueError(f"neuron must be one of {sorted(_NEURONS)}, got {self.neuron!r}")
        if self.encoder not in ("neuron", "heaviside"):
            raise ValueError(f"encoder must be 'neuron' or 'heaviside', got {self.encoder!r}")
        if self.lif_reset not in ("hard", "soft"):
            raise ValueError(f"lif_reset must be 'hard' or 'soft', got {self.lif_reset!r}")
        if self.kernel_size < 1 or self.max_position_embeddings < 1:
            raise ValueError("need kernel_size >= 1, max_position_embeddings >= 1")
        mode, passes = resolve_reset_mode(self.reset_mode, self.reset_passes)
        object.__setattr__(self, "reset_mode", mode)  # frozen: store the resolved pair
        object.__setattr__(self, "reset_passes", passes)


# -- neurons over the token axis: x [B, L, D], mask [B, L] | None -> spikes [B, L, D] ----------


class TokenLIF(nn.Module):
    """A serial multi-step LIF whose time axis is the token axis (individual coding baseline).

    ``[B, L, D]`` is permuted to ``[L, B, D]`` and run through :class:`~spikeformers.neurons.LIF`
    one token per step. Padded inputs are zeroed first (a neuron at rest with zero input stays at
    rest, so left padding leaves the real tokens untouched), and padded outputs are zeroed.

    Shapes: ``x [B, L, D]``, ``mask [B, L]`` (1 real, 0 padding) or ``None`` -> ``[B, L, D]``.
    """

    def __init__(self, lif: LIF) -> None:
        super().__init__()
        self.lif = lif

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        m = None if mask is None else mask.to(x.dtype).unsqueeze(-1)  # (B, L, 1)
        if m is not None:
            x = x * m
        s = self.lif(x.transpose(0, 1)).transpose(0, 1)  # (L, B, D) -> (B, L, D)
        return s if m is None else s * m


class HeavisideEncoder(SpikingModule):
    """Memoryless spike encoding ``S = Θ(x)`` (surrogate gradient), zero at padded positions.

    Shapes: ``x [B, L, D]``, ``mask [B, L]`` or ``None`` -> ``[B, L, D]``.
    """

    def __init__(self, surrogate: nn.Module) -> None:
        super().__init__()
        self.surrogate = surrogate

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        s = self.surrogate(x)
        return s if mask is None else s * mask.to(x.dtype).unsqueeze(-1)


def _bpsn(cfg: SnnBertConfig, num_channels: int, v_threshold: float) -> nn.Module:
    return BPSN(
        num_channels,
        kernel_size=cfg.kernel_size,
        tau=cfg.tau,
        v_threshold=v_threshold,
        fusion_init=cfg.fusion_init,
        reset_mode=cfg.reset_mode,
        reset_passes=cfg.reset_passes,
        detach_reset=cfg.detach_reset,
        surrogate=build_surrogate(cfg.surrogate, cfg.surrogate_alpha),
    )


def _token_lif(cfg: SnnBertConfig, num_channels: int, v_threshold: float) -> nn.Module:
    del num_channels  # the LIF has no per-channel parameters
    return TokenLIF(
        LIF(
            tau=cfg.tau,
            v_threshold=v_threshold,
            reset=cfg.lif_reset,
            detach_reset=cfg.detach_reset,
            surrogate=build_surrogate(cfg.surrogate, cfg.surrogate_alpha),
        )
    )


_NEURONS: dict[str, Callable[[SnnBertConfig, int, float], nn.Module]] = {
    "bpsn": _bpsn,
    "lif": _token_lif,
}


def build_token_neuron(
    cfg: SnnBertConfig, num_channels: int, v_threshold: float | None = None
) -> nn.Module:
    """The neuron named by ``cfg.neuron``, as a module ``(x [B, L, D], mask) -> spikes [B, L, D]``.

    Args:
        cfg: Model config (neuron choice and its settings).
        num_channels: Width ``D`` of the input.
        v_threshold: (Initial) threshold; ``None`` means ``cfg.v_threshold``.
    """
    th = cfg.v_threshold if v_threshold is None else v_threshold
    return _NEURONS[cfg.neuron](cfg, num_channels, th)


# -- layers -------------------------------------------------------------------------------------


class SnnBertLinear(nn.Module):
    """``Linear -> LayerNorm -> neuron`` over tokens.

    Shapes: ``x [B, L, D_in]``, ``mask [B, L]`` or ``None`` -> spikes ``[B, L, D_out]``.
    """

    def __init__(
        self, cfg: SnnBertConfig, d_in: int, d_out: int, v_threshold: float | None = None
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out, eps=cfg.layer_norm_eps)
        self.neuron = build_token_neuron(cfg, d_out, v_threshold)
        self.recompute: str | bool = cfg.memory_saving
        """Recompute ``neuron(LN(.))`` in backward instead of storing its saved tensors: ``on``,
        ``off``, ``auto`` (on an accelerator; see :func:`memory_saving_active`) or a bool."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        y = self.linear(x)  # (B, L, D_out)
        if torch.is_grad_enabled() and y.requires_grad and memory_saving_active(self.recompute, y):
            # Keep only the Linear's output for backward; LayerNorm's and the neuron's saved
            # tensors are recomputed from it (the same numbers: the recomputation is the forward).
            return checkpoint(self._fire, y, mask, use_reentrant=False)
        return self._fire(y, mask)

    def _fire(self, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.neuron(self.norm(y), mask)


class SnnBertSelfAttention(nn.Module):
    """Softmax-free spiking self-attention over tokens (SpikeBERT's SSA without a ``T`` axis).

    Per head, ``ctx = Q (K^T V) * scale``: without a softmax the product is associative, and for
    binary ``Q, K, V`` the integer sums are exact in either order, so this equals SpikeBERT's
    ``(Q K^T) V`` while costing ``O(L dh^2)`` instead of ``O(L^2 dh)``. Padded keys and values are
    zeroed, so padding contributes nothing to any real token.

    Shapes: ``x [B, L, D]``, ``mask [B, L]`` (1 real, 0 padding) or ``None`` -> spikes
    ``[B, L, D]``.
    """

    def __init__(self, cfg: SnnBertConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.scale = cfg.attn_scale
        self.q = SnnBertLinear(cfg, d, d)
        self.k = SnnBertLinear(cfg, d, d)
        self.v = SnnBertLinear(cfg, d, d)
        self.attn_neuron = build_token_neuron(cfg, d, cfg.attn_v_threshold)
        self.out = SnnBertLinear(cfg, d, d)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)  # (B, H, L, dh)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        need_scores: bool = False,
        pack: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend over tokens.

        Args:
            x: ``[B, L, D]``.
            mask: ``[B, L]``, 1 real, 0 padding, or ``None``.
            need_scores: Also return ``scale * Q K^T`` (for attention distillation only).
            pack: Save the integer-valued operands (input, ``Q, K, V``, attention spikes) for
                backward as bytes (:func:`~spikeformers.layers.packed.save_packed`).

        Returns:
            ``(out, scores)``: spikes ``[B, L, D]`` and ``[B, H, L, L]`` scores or ``None``.
        """
        b, n, d = x.shape
        with save_packed(x, enabled=pack):
            # Contiguous per head: the products would copy them so anyway, and a copy of our
            # own is what save_packed can recognise.
            q, k, v = (self._heads(m(x, mask)).contiguous() for m in (self.q, self.k, self.v))
        if mask is not None:
            # The neurons already emit no spike at padding; this keeps the guarantee local.
            m = mask.to(k.dtype)[:, None, :, None]  # (B, 1, L, 1)
            k, v = k * m, v * m
        with save_packed(q, k, v, enabled=pack):
            kv = k.transpose(-2, -1) @ v  # (B, H, dh, dh) key-value coincidence counts
            ctx = (q @ kv) * self.scale  # (B, H, L, dh)
            # Only for distillation: the spike-coincidence counts play the teacher's
            # pre-softmax Q K^T / sqrt(dh); zero wherever the query or the key is padding.
            scores = (q @ k.transpose(-2, -1)) * self.scale if need_scores else None
        ctx = ctx.transpose(1, 2).reshape(b, n, d)  # (B, L, D)
        s = self.attn_neuron(ctx, mask)
        with save_packed(s, enabled=pack):
            return self.out(s, mask), scores  # scores: (B, H, L, L) or None


class SnnBertBlock(nn.Module):
    """``x = x + SSA(x); x = x + MLP(x)`` on ``[B, L, D]`` (padding stays 0).

    ``forward`` returns ``(x, scores)`` as :class:`SnnBertSelfAttention` does.
    """

    def __init__(self, cfg: SnnBertConfig) -> None:
        super().__init__()
        self.attn = SnnBertSelfAttention(cfg)
        hidden = int(round(cfg.mlp_ratio * cfg.hidden_size))
        self.mlp = SpikingMLP(functools.partial(SnnBertLinear, cfg), cfg.hidden_size, hidden)

    def forward(  # noqa: D102
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        need_scores: bool = False,
        pack: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, scores = self.attn(x, mask, need_scores=need_scores, pack=pack)
        x = x + a
        return x + self.mlp(x, mask, pack=pack), scores


class SnnBertForSequenceClassification(SpikingModel):
    """SNN-BERT with a classification head. See the module docstring for the architecture."""

    config_class = SnnBertConfig
    supports_gradient_checkpointing = True
    # The time axis IS the token axis: BPSN and the encoder see [B, L, D]; the serial LIF
    # baseline (TokenLIF's inner LIF) runs time-first, [L, B, D].
    spike_layouts = (("*.lif", "LBD"), ("*", "BLD"))

    def __init__(self, config: SnnBertConfig) -> None:
        super().__init__(config)
        cfg = config
        self.embeddings = nn.Embedding(
            cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id
        )
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        # Embeddings are initialised tiny (std 0.02); the norm puts them on the thresholds' scale.
        self.embed_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        if cfg.encoder == "neuron":
            self.encode = build_token_neuron(cfg, cfg.hidden_size)
        else:
            self.encode = HeavisideEncoder(build_surrogate(cfg.surrogate, cfg.surrogate_alpha))
        self.blocks = nn.ModuleList(SnnBertBlock(cfg) for _ in range(cfg.num_layers))
        self.transforms = nn.ModuleList(
            FeatureTransform(cfg.hidden_size, cfg.layer_norm_eps) for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.apply(self._init_weights)

    @classmethod
    def tiny_config(cls) -> dict:  # noqa: D102
        return dict(num_layers=2, hidden_size=32, num_heads=4, max_position_embeddings=64)

    def get_input_embeddings(self) -> nn.Embedding:  # noqa: D102
        return self.embeddings

    def embed(self, input_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised token + position embeddings ``[B, L, D]`` before spike encoding.

        Positions count real tokens (``cumsum(mask) - 1``), so with right padding they are
        ``0 .. L-1`` and left padding shifts nothing.
        """
        b, n = input_ids.shape
        if mask is None:
            pos = torch.arange(n, device=input_ids.device).expand(b, n)
        else:
            pos = (mask.long().cumsum(1) - 1).clamp_min(0)  # (B, L)
        longest = int(pos.max()) + 1 if pos.numel() else 0
        if longest > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {longest} exceeds max_position_embeddings "
                f"{self.config.max_position_embeddings}"
            )
        return self.embed_norm(self.embeddings(input_ids) + self.position_embeddings(pos))

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> ClassifierOutput:
        """Classify token sequences, token ``t`` entering at time step ``t`` (individual coding).

        Args:
            input_ids: ``[B, L]`` token ids.
            attention_mask: ``[B, L]``, 1 for real tokens and 0 for padding (any side); ``None``
                means no padding.
            labels: ``[B]`` class ids (or floats for regression); adds ``loss``.
            output_hidden_states: Also return the distillation features. Off by default: the
                transforms and score maps exist only for distillation.

        Returns:
            ``ClassifierOutput`` with ``logits [B, C]`` and, if asked, ``hidden_states``: one
            ``[B, L, D]`` feature per block (the transform of the block output), and
            ``attentions``: one ``[B, H, L, L]`` map ``scale * Q K^T`` of spike coincidences per
            block (0 for padded queries and keys).
        """
        mask = attention_mask
        x = self.encode(self.embed(input_ids, mask), mask)  # (B, L, D) spikes
        # Spikes and the residual stream (sums of at most 2 * num_layers + 1 spikes) are
        # integers, saved for backward as bytes, unless a spike function is in analog mode.
        pack = (
            memory_saving_active(self.config.memory_saving, input_ids)
            and self.config.num_layers <= 127
            and all_spiking(self)
        )
        features, attentions = [], []
        ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block, transform in zip(self.blocks, self.transforms, strict=True):
            if ckpt:  # stores x only: packing inside would keep what checkpointing drops
                x, scores = checkpoint(
                    block, x, mask, need_scores=output_hidden_states, pack=False,
                    use_reentrant=False,
                )  # fmt: skip
            else:
                x, scores = block(x, mask, need_scores=output_hidden_states, pack=pack)  # counts
            if output_hidden_states:
                features.append(transform(x))
                attentions.append(scores)
        pooled = masked_mean(self.norm(x), mask, dim=1)  # (B, L, D) -> (B, D)
        logits = self.classifier(self.dropout(pooled))  # (B, C)
        loss = classification_loss(logits, labels) if labels is not None else None
        return ClassifierOutput(
            logits=logits, loss=loss, hidden_states=features, attentions=attentions
        )


_SIZES = {
    # name: (num_layers, hidden_size, num_heads); the paper's sizes are not public
    "tiny": (2, 64, 4),
    "mini": (4, 384, 6),  # the width of the MiniLM teacher
    "small": (6, 512, 8),
}  # BERT-base size (12x768, 12 heads) is registered as `snnbert` below


def _variants() -> dict[str, tuple[str, dict]]:
    """Every named SNN-BERT variant: ``name -> (description, config defaults)``."""
    out = {
        "snnbert": ("SNN-BERT 12x768, 12 heads (BERT-base size), BPSN, individual coding", {}),
        # BPSN's baseline, for benchmarks: mini size, a serial LIF over the tokens
        "snnbert-lif": (
            "SNN-BERT 4x384, 6 heads with a serial LIF over tokens (BPSN's baseline)",
            dict(num_layers=4, hidden_size=384, num_heads=6, neuron="lif"),
        ),
    }
    for size, (depth, width, heads) in _SIZES.items():
        out[f"snnbert-{size}"] = (
            f"SNN-BERT {depth}x{width}, {heads} heads, BPSN, individual coding",
            dict(num_layers=depth, hidden_size=width, num_heads=heads),
        )
    return out


register_family(SnnBertForSequenceClassification, variants=_variants())
