"""SpikeBERT: a Spikformer for text, distilled from BERT.

Lv et al., "SpikeBERT: A Language Spikformer Learned from BERT with Knowledge Distillation",
arXiv:2308.15122 (Neural Networks 197:108482, 2026).

Layout inside the spiking stack is time-first ``[T, B, L, D]`` (``T`` time steps, ``B`` batch,
``L`` tokens, ``D`` width). The model:

1. token embedding (plus learned positions unless ``use_positions=False``) -> Heaviside with the
   ATan surrogate -> the same binary pattern repeated ``T`` times ("repeat coding");
2. ``num_layers`` blocks ``x = x + SSA(x); x = x + MLP(x)`` (additive residuals, so the stream
   holds small integers after the first block);
3. spiking self-attention without softmax: ``Q, K, V = LIF(LN(Linear(x)))`` per head,
   ``X' = LIF_attn((Q K^T) V * scale)``, ``out = LIF(LN(Linear_o(X')))``;
4. MLP ``Linear(D, rD) -> LN -> LIF -> Linear(rD, D) -> LN -> LIF``;
5. readout: final LN -> mean over tokens -> linear classifier at every step -> mean over ``T``;
6. per-block "transforms" (``Linear(D, D) + LN`` on the time-mean of each block's output) that
   exist only to align student features with teacher hidden states during distillation.

Two behaviours are configurable so the paper's choice can be compared with the better default:
``use_positions`` (the paper has no positional information: a bag of tokens) and
``mask_padding`` (the paper lets ``[PAD]`` enter attention and the mean-pool, so the logits depend
on how much padding a batch has). ``spikebert-*-paper`` variants switch both off.

Padding. With ``mask_padding`` (the default) padded positions never spike anywhere: the encoder
gets a current below its threshold there and every LIF a zero current (which cannot reach a
positive threshold), so padding costs no spikes and changes no real token's output. Without it
(the paper's model) ``[PAD]`` is an ordinary token, as in the public code (an
``nn.Embedding`` without ``padding_idx``): its embedding row is learned and padded positions
spike like any other token. (A zero, frozen ``[PAD]`` row would instead encode to an all-ones
spike vector, since the encoder fires at exactly 0.)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

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
from spikeformers.layers.sparse import MODES, spike_linear
from spikeformers.layers.spiking import SpikingMLP
from spikeformers.models.base import (
    ClassifierOutput,
    ModelConfig,
    SpikingModel,
    classification_loss,
)
from spikeformers.neurons.lif import LIF
from spikeformers.neurons.surrogate import build_surrogate
from spikeformers.registry import register_family
from spikeformers.utils.literal import literal_algorithm


@dataclass(frozen=True, kw_only=True)
class SpikeBertConfig(ModelConfig):
    """SpikeBERT hyper-parameters (defaults: the paper's model, with positions and padding mask)."""

    model_type = "spikebert"

    hidden_size: int = 768
    """Width ``D``."""
    num_layers: int = 12
    """Number of Spikformer blocks."""
    num_heads: int = 8
    """Attention heads (``D`` must be divisible by it)."""
    mlp_ratio: float = 4.0
    """MLP width is ``mlp_ratio * D``."""
    time_steps: int = 4
    """Simulation steps ``T`` (repeat coding: the same input at every step)."""
    max_position_embeddings: int = 512
    """Longest sequence with learned positions."""
    use_positions: bool = True
    """Add learned positional embeddings before spike encoding (the paper has none)."""
    mask_padding: bool = True
    """Keep padding out of attention and pooling (the paper lets it in)."""
    tau: float = 2.0
    """LIF membrane time constant (paper: 2 in stage 2, 10 in stage 1)."""
    v_threshold: float = 1.0
    """Threshold of every LIF except the attention one."""
    attn_v_threshold: float = 0.5
    """Threshold of the LIF after ``(Q K^T) V``."""
    attn_scale: float = 0.125
    """Fixed scale of ``(Q K^T) V`` (no softmax)."""
    surrogate: str = "atan"
    """Surrogate gradient name (``atan`` or ``sigmoid``)."""
    surrogate_alpha: float = 2.0
    """Surrogate sharpness."""
    detach_reset: bool = True
    """Detach the reset path from the graph (as SpikingJelly's ``detach_reset``)."""
    reset: str = "hard"
    """``hard`` (to zero) or ``soft`` (subtract threshold) reset."""
    dropout: float = 0.0
    """Dropout on the classifier input (train mode only)."""
    layer_norm_eps: float = 1e-5
    """LayerNorm epsilon."""
    sparse_spike_matmul: str = "off"
    """Linear products from the input's nonzero entries: ``off``, ``on`` or ``auto`` (by the
    input's density and width; see :mod:`spikeformers.layers.sparse`). Same results within
    float rounding."""
    memory_saving: str = "auto"
    """Training memory against time: ``on`` saves spike operands for backward as bytes and
    recomputes ``LIF(LayerNorm(.))`` in backward; ``off`` stores them as floats (faster on a
    CPU); ``auto``: on for an accelerator, off on the CPU. Same numbers either way."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )
        if self.time_steps < 1 or self.num_layers < 1:
            raise ValueError("time_steps and num_layers must be >= 1")
        if self.reset not in ("hard", "soft"):
            raise ValueError(f"reset must be 'hard' or 'soft', got {self.reset!r}")
        if self.sparse_spike_matmul not in MODES:
            raise ValueError(f"sparse_spike_matmul must be one of {MODES}")
        if self.memory_saving not in MEMORY_SAVING:
            raise ValueError(f"memory_saving must be one of {MEMORY_SAVING}")


def _lif(cfg: SpikeBertConfig, v_threshold: float | None = None) -> LIF:
    return LIF(
        tau=cfg.tau,
        v_threshold=cfg.v_threshold if v_threshold is None else v_threshold,
        reset=cfg.reset,
        detach_reset=cfg.detach_reset,
        surrogate=build_surrogate(cfg.surrogate, cfg.surrogate_alpha),
    )


class SpikeBertLinear(nn.Module):
    """``Linear -> LayerNorm -> LIF``, the spiking layer used everywhere in SpikeBERT.

    Shapes: ``x [T, B, L, D_in]``, ``mask [B, L]`` (1 real, 0 padding) or ``None``
    -> ``[T, B, L, D_out]`` spikes, none at padded positions (their current is zeroed). An
    input that is constant over ``T`` as a view (time stride 0, as repeat coding's ``expand``)
    is projected once, not ``T`` times: the same numbers (row-wise ops), ``T`` times fewer FLOPs.
    """

    def __init__(
        self, cfg: SpikeBertConfig, d_in: int, d_out: int, v_threshold: float | None = None
    ):
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)
        self.norm = nn.LayerNorm(d_out, eps=cfg.layer_norm_eps)
        self.lif = _lif(cfg, v_threshold)
        self.sparse = cfg.sparse_spike_matmul
        self.recompute: str | bool = cfg.memory_saving
        """Recompute ``LIF(LN(.))`` in backward instead of storing its saved tensors: ``on``,
        ``off``, ``auto`` (on an accelerator; see :func:`memory_saving_active`) or a bool."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        steps = None
        if x.dim() > 1 and x.shape[0] > 1 and x.stride(0) == 0 and not literal_algorithm():
            # Time-invariant input (repeat coding, e.g. ``expand`` of the encoded embedding):
            # Linear and LayerNorm act per row, so run them once and repeat their output.
            x, steps = x[0], x.shape[0]
        y = spike_linear(x, self.linear, self.sparse)  # (T, B, L, D_out), or (B, L, D_out) once
        if torch.is_grad_enabled() and y.requires_grad and memory_saving_active(self.recompute, y):
            # Keep only the Linear's output for backward; LayerNorm's and the LIF's saved
            # tensors (the membrane H, as large as y) are recomputed from it, bit for bit.
            return checkpoint(self._fire, y, steps, mask, use_reentrant=False)
        return self._fire(y, steps, mask)

    def _fire(
        self, y: torch.Tensor, steps: int | None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``LIF(LN(y))``, with ``LN(y)`` repeated ``steps`` times first unless ``None``; a
        ``[B, L]`` ``mask`` zeroes padded positions' current (a LIF with zero input stays below
        threshold)."""
        z = self.norm(y)
        if mask is not None:
            z = z * mask.to(z.dtype)[:, :, None]  # (B, L, 1): broadcasts over T when present
        return self.lif(z if steps is None else z.expand(steps, *z.shape))


def spike_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(Q K^T) V`` without softmax, multiplied in the cheaper order for the shape.

    The product is associative, so ``Q (K^T V)`` (``O(L dh^2)``, no ``L x L`` tensor) equals
    ``(Q K^T) V`` (``O(L^2 dh)``); for spikes every partial sum is an integer below ``2^24``,
    exact in float32, so the two orders give the same bits (gradients agree up to rounding).
    The order switches to ``Q (K^T V)`` when ``L > dh`` (not under
    :func:`~spikeformers.utils.literal.literal_algorithm`).

    Shapes: ``q, k, v [..., L, dh]`` -> ``[..., L, dh]``.
    """
    if q.shape[-2] > q.shape[-1] and not literal_algorithm():
        return q @ (k.transpose(-2, -1) @ v)  # (..., dh, dh) key-value counts first
    return (q @ k.transpose(-2, -1)) @ v  # (..., L, L) coincidence counts first


class SpikeBertSelfAttention(nn.Module):
    """Softmax-free spiking self-attention (SSA).

    ``A = Q K^T`` counts, per head, the time-aligned spike coincidences between tokens; ``A V``
    sums the value spikes of the tokens each query attends to. There is no softmax, so the
    product is associative: :func:`spike_attention` picks the cheaper order, and the result is
    scaled by a constant.

    Shapes: ``x [T, B, L, D]``, ``key_mask [B, L]`` (1 real, 0 padding, or ``None``)
    -> ``[T, B, L, D]`` spikes.
    """

    def __init__(self, cfg: SpikeBertConfig):
        super().__init__()
        d = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.scale = cfg.attn_scale
        self.q = SpikeBertLinear(cfg, d, d)
        self.k = SpikeBertLinear(cfg, d, d)
        self.v = SpikeBertLinear(cfg, d, d)
        self.attn_lif = _lif(cfg, cfg.attn_v_threshold)
        self.out = SpikeBertLinear(cfg, d, d)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        t, b, n, d = x.shape
        return x.view(t, b, n, self.num_heads, d // self.num_heads).transpose(
            2, 3
        )  # (T, B, H, L, dh)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None = None, *, pack: bool = False
    ) -> torch.Tensor:
        """Attend; ``pack``: save the integer-valued operands for backward as bytes."""
        t, b, n, d = x.shape
        with save_packed(x, enabled=pack):
            # Contiguous per head: the products would copy them so anyway, and a copy of our
            # own is what save_packed can recognise (and store as bytes).
            q, k, v = (self._heads(m(x, key_mask)).contiguous() for m in (self.q, self.k, self.v))
        if key_mask is not None:
            # A zero key row makes every score against that token 0, so padding adds nothing
            # (its value row is multiplied by those zeros: masking V as well changes nothing).
            k = k * key_mask.to(k.dtype)[None, :, None, :, None]  # (1, B, 1, L, 1) mask
        with save_packed(q, k, v, enabled=pack):
            ctx = spike_attention(q, k, v) * self.scale  # (T, B, H, L, dh)
        if key_mask is not None:
            # Padded queries: no current into the attention LIF (their Q rows are zero already;
            # this keeps the guarantee local).
            ctx = ctx * key_mask.to(ctx.dtype)[None, :, None, :, None]
        ctx = self.attn_lif(ctx).transpose(2, 3).reshape(t, b, n, d)  # (T, B, L, D)
        with save_packed(ctx, enabled=pack):
            return self.out(ctx, key_mask)


class SpikformerBlock(nn.Module):
    """``x = x + SSA(x); x = x + MLP(x)`` on ``[T, B, L, D]``."""

    def __init__(self, cfg: SpikeBertConfig):
        super().__init__()
        self.attn = SpikeBertSelfAttention(cfg)
        hidden = int(round(cfg.mlp_ratio * cfg.hidden_size))
        self.mlp = SpikingMLP(functools.partial(SpikeBertLinear, cfg), cfg.hidden_size, hidden)

    def forward(
        self, x: torch.Tensor, key_mask: torch.Tensor | None = None, *, pack: bool = False
    ) -> torch.Tensor:
        """``[T, B, L, D]`` -> ``[T, B, L, D]``; ``pack`` as in :class:`SpikeBertSelfAttention`."""
        x = x + self.attn(x, key_mask, pack=pack)
        return x + self.mlp(x, key_mask, pack=pack)


class SpikeBertForSequenceClassification(SpikingModel):
    """SpikeBERT with a classification head. See the module docstring for the architecture."""

    config_class = SpikeBertConfig
    supports_gradient_checkpointing = True
    # Encoder spikes [B, L, D] (before repeat coding); attention LIF per head [T, B, H, L, dh];
    # every other LIF [T, B, L, D].
    spike_layouts = (("encode", "BLD"), ("*.attn_lif", "TBHLD"), ("*", "TBLD"))

    def __init__(self, config: SpikeBertConfig):
        super().__init__(config)
        cfg = config
        # Unmasked (the paper's model), [PAD] is a learned token like any other; masked, its
        # row is never used, so it stays a frozen zero row.
        self.embeddings = nn.Embedding(
            cfg.vocab_size,
            cfg.hidden_size,
            padding_idx=cfg.pad_token_id if cfg.mask_padding else None,
        )
        self.position_embeddings = (
            nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
            if cfg.use_positions
            else None
        )
        self.encode = build_surrogate(cfg.surrogate, cfg.surrogate_alpha)
        self.blocks = nn.ModuleList(SpikformerBlock(cfg) for _ in range(cfg.num_layers))
        self.transforms = nn.ModuleList(
            FeatureTransform(cfg.hidden_size, cfg.layer_norm_eps) for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(cfg.hidden_size, cfg.num_labels)
        self.apply(self._init_weights)

    @classmethod
    def tiny_config(cls) -> dict:  # noqa: D102
        return dict(
            num_layers=2, hidden_size=32, num_heads=4, time_steps=2, max_position_embeddings=64
        )

    def get_input_embeddings(self) -> nn.Embedding:  # noqa: D102
        return self.embeddings

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Real-valued token (+ position) embeddings ``[B, L, D]`` before spike encoding."""
        x = self.embeddings(input_ids)
        if self.position_embeddings is not None:
            n = input_ids.shape[1]
            if n > self.config.max_position_embeddings:
                raise ValueError(
                    f"sequence length {n} exceeds max_position_embeddings "
                    f"{self.config.max_position_embeddings}"
                )
            x = x + self.position_embeddings.weight[:n]
        return x

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
            attention_mask: ``[B, L]``, 1 for real tokens and 0 for padding. Ignored (padding
                is treated like any token) when ``config.mask_padding`` is False.
            labels: ``[B]`` class ids (or floats for regression); adds ``loss``.
            output_hidden_states: Also return the distillation features. Off by default: the
                transforms exist only for distillation, so inference never pays for them.

        Returns:
            ``ClassifierOutput`` with ``logits [B, C]`` and, if asked, ``hidden_states``: one
            ``[B, L, D]`` feature per block (transform of the block output's mean over ``T``).
        """
        cfg = self.config
        mask = attention_mask if cfg.mask_padding else None
        if mask is not None and bool(mask.all()):
            mask = None  # nothing padded: the same outputs without the masking work
        e = self.embed(input_ids)  # (B, L, D)
        if mask is not None:
            # The encoder fires at exactly 0: padded positions get a current below it instead.
            e = e.masked_fill(~mask.bool()[:, :, None], -1.0)
        spikes = self.encode(e)  # (B, L, D) binary, none at padding
        x = spikes.unsqueeze(0).expand(cfg.time_steps, *spikes.shape)  # (T, B, L, D) repeat coding
        # Spikes and the residual stream (sums of at most 2 * num_layers + 1 spikes) are
        # integers, saved for backward as bytes, unless a spike function is in analog mode.
        pack = (
            memory_saving_active(self.config.memory_saving, input_ids)
            and self.config.num_layers <= 127
            and all_spiking(self)
        )
        features = []
        ckpt = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block, transform in zip(self.blocks, self.transforms, strict=True):
            if ckpt:  # stores x only: packing inside would keep what checkpointing drops
                x = checkpoint(block, x, mask, pack=False, use_reentrant=False)
            else:
                x = block(x, mask, pack=pack)
            if output_hidden_states:
                features.append(transform(x.mean(0)))  # (B, L, D)
        pooled = masked_mean(self.norm(x), mask, dim=2)  # (T, B, L, D) -> (T, B, D)
        logits = self.classifier(self.dropout(pooled)).mean(0)  # (B, C)
        loss = classification_loss(logits, labels) if labels is not None else None
        return ClassifierOutput(logits=logits, loss=loss, hidden_states=features)


_SIZES = {
    # name: (num_layers, hidden_size, num_heads)
    "tiny": (2, 64, 4),
    "mini": (4, 384, 6),
    "small": (6, 512, 8),
}  # the paper's size (12x768, 8 heads) is registered as `spikebert` / `spikebert-paper` below
_PAPER = {"use_positions": False, "mask_padding": False}  # the published model's two choices


def _variants() -> dict[str, tuple[str, dict]]:
    """Every named SpikeBERT variant: ``name -> (description, config defaults)``."""
    out = {
        "spikebert": ("SpikeBERT at the paper's size (12x768, 8 heads, T=4) + positions, mask", {}),
        "spikebert-paper": (
            "SpikeBERT as published: 12x768, 8 heads, T=4, no positions/mask",
            _PAPER,
        ),
    }
    for size, (depth, width, heads) in _SIZES.items():
        shape = dict(num_layers=depth, hidden_size=width, num_heads=heads)
        what = f"SpikeBERT {depth}x{width}, {heads} heads, T=4"
        out[f"spikebert-{size}"] = (f"{what}; positions + padding mask", shape)
        out[f"spikebert-{size}-paper"] = (
            f"{what}; faithful to the paper (no positions, padding unmasked)",
            {**shape, **_PAPER},
        )
    return out


register_family(SpikeBertForSequenceClassification, variants=_variants())
