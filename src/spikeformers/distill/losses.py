"""Distillation loss terms, one small module each.

Every term takes student and teacher tensors (plus an optional token mask) and returns a scalar.
Reductions are documented per term so weights mean the same thing across families.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SoftTargetKL(nn.Module):
    """``KL(softmax(z_t / tau) || softmax(z_s / tau)) * tau**2``, averaged over the batch.

    The ``tau**2`` factor (Hinton et al. 2015) keeps gradient magnitudes comparable across
    temperatures. With ``tau = 1`` this is the plain KL of the published SpikeBERT script.

    Shapes: ``student_logits [B, C]``, ``teacher_logits [B, C]`` -> scalar.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:  # noqa: D102
        t = self.temperature
        log_p_s = F.log_softmax(student_logits / t, dim=-1)
        log_p_t = F.log_softmax(teacher_logits / t, dim=-1)
        return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * t * t

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"


class LogitMSE(nn.Module):
    """``mean_b ||z_s - z_t||^2 / C``: the logit term of a regression task (TinyBERT's choice).

    A softmax over one logit is the constant 1, so :class:`SoftTargetKL` is identically 0 (and
    gives no gradient) when ``num_labels == 1``; the student instead matches the teacher's
    predicted value. No temperature: it would only rescale the term.

    Shapes: ``student_logits [B, C]``, ``teacher_logits [B, C]`` (``C = 1`` for regression)
    -> scalar.
    """

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return F.mse_loss(student_logits, teacher_logits.to(student_logits.dtype))


class SoftCrossEntropy(nn.Module):
    """TinyBERT's prediction loss ``-sum softmax(z_t/tau) * log_softmax(z_s/tau)``, batch mean.

    Differs from ``SoftTargetKL`` by the teacher entropy (a constant), so the gradients agree.
    Shapes: ``[B, C]`` and ``[B, C]`` -> scalar.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:  # noqa: D102
        t = self.temperature
        p_t = F.softmax(teacher_logits / t, dim=-1)
        return -(p_t * F.log_softmax(student_logits / t, dim=-1)).sum(-1).mean()


class MaskedMSE(nn.Module):
    """Mean squared error over real tokens only.

    ``sum_{b,l: mask=1} ||s_bl - t_bl||^2 / (n_real * D)``: the mean over real positions and
    features, so padding (whatever the student or teacher put there) never contributes.

    Shapes: ``student [B, L, D]``, ``teacher [B, L, D]``, ``mask [B, L]`` or ``None`` -> scalar.
    """

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:  # noqa: D102
        if student.shape != teacher.shape:
            raise ValueError(
                f"shape mismatch: student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}"
            )
        sq = (student - teacher.to(student.dtype)) ** 2
        if mask is None:
            return sq.mean()
        m = mask.to(sq.dtype).unsqueeze(-1)  # (B, L, 1)
        return (sq * m).sum() / (m.sum() * sq.shape[-1]).clamp_min(1.0)


class AttentionScoreMSE(nn.Module):
    """MSE between attention score maps, with masked (padding) entries zeroed on both sides.

    TinyBERT/SpikingBERT compare pre-softmax scores; entries where either token is padding are set
    to 0 in both maps (instead of TinyBERT's magic ``-1e2`` threshold), then averaged over the
    real ``(query, key)`` pairs.

    Shapes: ``student [B, H, L, L]``, ``teacher [B, H, L, L]``, ``mask [B, L]`` or ``None``.
    """

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:  # noqa: D102
        if mask is None:
            return F.mse_loss(student, teacher.to(student.dtype))
        m = mask.to(student.dtype)
        pair = (m[:, :, None] * m[:, None, :])[:, None]  # (B, 1, L, L)
        sq = ((student - teacher.to(student.dtype)) * pair) ** 2
        return sq.sum() / (pair.sum() * student.shape[1]).clamp_min(1.0)
