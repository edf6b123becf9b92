"""The training loop on a toy objective: accumulation, NaN detection, precision, crash + resume.

No teacher and no tokenizer: a bag-of-embeddings classifier over synthetic token ids, so each
test takes well under a second.
"""

from __future__ import annotations

import random

import pytest
import torch
from torch import nn

from spikeformers import checkpoint as ckpt
from spikeformers.data.text_classification import EncodedDataset
from spikeformers.distributed import make_train_loader
from spikeformers.trainer import TrainConfig, fit


class Toy(nn.Module):
    """Mean of token embeddings -> dropout -> linear; CE loss (a per-example mean)."""

    def __init__(self, dropout: float = 0.0, nan_at: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, 8)
        self.head = nn.Linear(8, 2)
        self.drop = nn.Dropout(dropout)
        self.nan_at, self.calls = nan_at, 0

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.calls += 1
        m = batch["attention_mask"].unsqueeze(-1).float()  # (B, L, 1)
        h = (self.emb(batch["input_ids"]) * m).sum(1) / m.sum(1)  # (B, 8)
        loss = nn.functional.cross_entropy(self.head(self.drop(h)), batch["labels"])
        if self.nan_at is not None and self.calls >= self.nan_at:
            loss = loss * float("nan")
        return {"loss": loss, "ce": loss}


def toy_data(n: int = 21, seed: int = 0) -> EncodedDataset:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        ids = [rng.randrange(1, 20) for _ in range(rng.randint(2, 7))]
        items.append(
            {
                "input_ids": ids,
                "token_type_ids": [0] * len(ids),
                "index": i,
                "label": int(sum(ids) % 2),
            }
        )
    return EncodedDataset(items)


def run_fit(cfg: TrainConfig, model: Toy | None = None, **kw):
    model = model or Toy()
    loader = make_train_loader(
        toy_data(),
        global_batch_size=cfg.batch_size,
        seed=cfg.seed,
        pad_token_id=0,
        grad_accum=cfg.grad_accum,
        drop_last=cfg.drop_last,
    )
    result = fit(
        model,
        loader,
        cfg,
        device=torch.device("cpu"),
        select_module=model,
        show_progress=False,
        **kw,
    )
    return model, result


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("accum", [2, 4])
def test_grad_accumulation_matches_one_big_batch(accum):
    # 21 examples, global batch 8: the last batch (5) is split unevenly, some micro-batches empty
    base = TrainConfig(epochs=2, batch_size=8, lr=1e-2, grad_clip=None, log_every=1)
    ref, _ = run_fit(base)
    acc, result = run_fit(TrainConfig(**{**base.__dict__, "grad_accum": accum}))
    assert result.steps == 6
    for k, v in weights(ref).items():
        torch.testing.assert_close(weights(acc)[k], v, rtol=0, atol=1e-6)


def test_examples_and_real_tokens_seen_are_counted_over_epochs():
    tokens = sum(len(item["input_ids"]) for item in toy_data())  # padding not counted
    _, result = run_fit(TrainConfig(epochs=2, batch_size=8, grad_accum=2))
    assert (result.examples_seen, result.tokens_seen) == (2 * 21, 2 * tokens)
    _, one = run_fit(TrainConfig(max_steps=1, batch_size=8))
    assert one.examples_seen == 8 and 8 * 2 <= one.tokens_seen <= 8 * 7  # 2..7 ids a text


def test_drop_last_skips_each_epochs_short_batch():
    # 21 examples, global batch 8: two full batches and one of 5 per epoch
    model, result = run_fit(TrainConfig(epochs=2, batch_size=8, drop_last=True, log_every=1))
    assert result.steps == 4 and model.calls == 4
    _, kept = run_fit(TrainConfig(epochs=2, batch_size=8, log_every=1))
    assert kept.steps == 6


def test_drop_last_must_match_the_loader():
    cfg = TrainConfig(epochs=1, batch_size=8, drop_last=True)
    sharded = make_train_loader(toy_data(), global_batch_size=8, seed=0, pad_token_id=0)
    plain = torch.utils.data.DataLoader(toy_data(), batch_size=8)
    for loader in (sharded, plain):
        with pytest.raises(ValueError, match="drop_last"):
            model = Toy()
            fit(model, loader, cfg, device=torch.device("cpu"), select_module=model)


def test_nan_loss_names_the_step_and_keeps_last_good_checkpoint(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=8, log_every=100)  # checked before each checkpoint
    c = ckpt.CheckpointConfig(dir=tmp_path / "checkpoints", save_every=2, keep_last=5)
    with pytest.raises(FloatingPointError) as e:
        run_fit(cfg, Toy(nan_at=4), checkpoint=c)
    msg = str(e.value)
    assert "loss became nan at step 4" in msg and "step-2" in msg
    assert [s for s, _ in ckpt.complete_checkpoints(c.dir)] == [2]  # step 4 never written


def test_nan_weights_with_a_finite_loss_are_never_checkpointed(tmp_path):
    model = Toy()
    model.head.weight.register_hook(lambda g: g * float("inf"))  # inf gradient, finite loss
    c = ckpt.CheckpointConfig(dir=tmp_path / "checkpoints", save_every=1)
    cfg = TrainConfig(epochs=1, batch_size=8, grad_clip=None)
    with pytest.raises(FloatingPointError, match="weights became NaN/inf by step 1"):
        run_fit(cfg, model, checkpoint=c)
    assert ckpt.complete_checkpoints(c.dir) == []


def test_bf16_on_cpu_trains_and_fp16_on_cpu_is_refused():
    _, result = run_fit(TrainConfig(max_steps=2, batch_size=8, precision="bf16"))
    assert result.steps == 2
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU"):
        run_fit(TrainConfig(max_steps=2, batch_size=8, precision="fp16"))


def test_crash_then_resume_is_bitwise_equal_with_dropout(tmp_path):
    """A crash (here: an exception in validation) after step 5, resume: same weights, exactly."""
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, evals_per_epoch=3, log_every=1)
    evals = iter(range(100))

    def validation():
        return {"score": float(next(evals) % 7)}  # best at step 7, after the resume

    ref_model, ref = run_fit(cfg, Toy(dropout=0.3), evaluate_fn=validation, select_key="score")

    def crashing():
        if len(ref_hist) == 5:
            raise RuntimeError("simulated crash")
        ref_hist.append(1)
        return validation()

    evals, ref_hist = iter(range(100)), []
    c = ckpt.CheckpointConfig(dir=tmp_path / "ck", save_every=1, keep_last=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_fit(cfg, Toy(dropout=0.3), evaluate_fn=crashing, select_key="score", checkpoint=c)
    assert ckpt.complete_checkpoints(c.dir)[-1][0] == 5
    evals = iter(range(5, 100))  # validation continues where it stopped
    resumed = ckpt.CheckpointConfig(dir=c.dir, save_every=1, keep_last=2, resume=True)
    model, result = run_fit(
        cfg, Toy(dropout=0.3), evaluate_fn=validation, select_key="score", checkpoint=resumed
    )
    assert result.steps == ref.steps == 9
    tokens = sum(len(item["input_ids"]) for item in toy_data())
    assert (result.examples_seen, result.tokens_seen) == (ref.examples_seen, ref.tokens_seen)
    assert (ref.examples_seen, ref.tokens_seen) == (3 * 21, 3 * tokens)  # the resume kept them
    assert ref.best["step"] == 7  # selected after the resume point: selection state restored
    assert result.best == ref.best and len(result.history) == len(ref.history)
    for k, v in weights(ref_model).items():
        assert torch.equal(weights(model)[k], v), k


def test_resume_refuses_other_settings(tmp_path):
    c = ckpt.CheckpointConfig(dir=tmp_path / "ck", save_every=1)
    run_fit(TrainConfig(max_steps=2, batch_size=8), checkpoint=c)
    again = ckpt.CheckpointConfig(dir=c.dir, save_every=1, resume=True)
    with pytest.raises(ValueError, match="lr: checkpoint 0.0005, now 0.001"):
        run_fit(TrainConfig(max_steps=2, batch_size=8, lr=1e-3), checkpoint=again)
