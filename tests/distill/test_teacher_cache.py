"""The teacher-output cache: the same losses and the same training as the live teacher.

Reference: the live teacher (``Distiller`` without a cache) on the same batch. The cache is
built from batches grouped differently from the training batches (other padding), so equality
also checks that padding never reaches a loss.
"""

from __future__ import annotations

import pytest
import torch

import spikeformers.models.spikingbert  # noqa: F401  (registers the family returning scores)
from spikeformers import create_model
from spikeformers.data.text_classification import EncodedDataset, PadCollator
from spikeformers.distill.distiller import DistillConfig, Distiller
from spikeformers.distill.teacher import teacher_forward
from spikeformers.trainer import TrainConfig, build_optimizer, build_scheduler, train_step
from tests.conftest import make_tiny_teacher, tiny_overrides

VOCAB = 40
LENGTHS = [7, 3, 5, 2, 6, 4, 7, 3, 5, 4]


def _dataset(labelled: bool = True) -> EncodedDataset:
    g = torch.Generator().manual_seed(1)
    items = []
    for i, n in enumerate(LENGTHS):
        ids = [2, *torch.randint(5, VOCAB, (n - 2,), generator=g).tolist(), 3]
        item = {"input_ids": ids, "token_type_ids": [0] * n, "index": i}
        if labelled:
            item["label"] = i % 2
        items.append(item)
    return EncodedDataset(items)


def _batch(ds: EncodedDataset, rows: list[int]) -> dict[str, torch.Tensor]:
    return PadCollator(0)([ds[i] for i in rows])


def _pair(variant: str = "spikebert-tiny", teacher_seed: int = 0, **cfg):
    """Two distillers with identical students and the same teacher: (live, cached)."""
    teacher = make_tiny_teacher(VOCAB, layers=4, seed=teacher_seed)
    overrides = {**tiny_overrides(VOCAB), "time_steps": 2}
    dcfg = DistillConfig(stage=cfg.pop("stage", "task"), **cfg)
    made = []
    for _ in range(2):
        torch.manual_seed(3)
        made.append(Distiller(create_model(variant, **overrides), teacher, dcfg))
    return made


ALL_TERMS = dict(w_emb=0.1, w_ce=0.1, w_logit=1.0, w_feat=0.1, temperature=2.0)


@pytest.mark.parametrize(
    ("variant", "cfg"),
    [
        ("spikebert-tiny", ALL_TERMS),
        ("spikingbert-tiny", {**ALL_TERMS, "w_attn": 1.0, "always_project_features": True}),
        ("spikebert-tiny", {"stage": "general", "w_emb": 0.0, "w_feat": 1.0}),
    ],
)
def test_cached_losses_equal_the_live_teachers(variant, cfg):
    live, cached = _pair(variant, **dict(cfg))
    ds = _dataset()
    cached.cache_teacher_outputs(ds, batch_size=3)  # other groups, other padding than below
    for rows in ([0, 1, 2, 3], [4, 9, 5], [6, 7, 8]):
        batch = _batch(ds, rows)
        want, got = live(batch), cached(batch)
        assert set(got) == set(want)
        for name in want:
            torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6)


def test_cache_keeps_only_what_the_loss_uses_unpadded_on_cpu():
    _, d = _pair(w_emb=0.1, w_ce=0.1, w_logit=1.0, w_feat=0.1)
    assert d.layer_map == [2, 4]
    ds = _dataset()
    cache = d.cache_teacher_outputs(ds, batch_size=4)
    assert sorted(cache.hidden) == [2, 4] and cache.scores == {}
    for j in (2, 4):
        for i, n in enumerate(LENGTHS):
            h = cache.hidden[j][i]
            assert h.shape == (n, 32) and h.device.type == "cpu" and h.dtype == torch.float32
            # each example's states are its own forward's (not a view of a padded batch)
            alone = teacher_forward(d.teacher, _batch(ds, [i])).hidden_states[j][0]
            torch.testing.assert_close(h, alone, rtol=1e-5, atol=1e-6)
            assert h.untyped_storage().nbytes() == n * 32 * 4
    assert cache.logits.shape == (len(LENGTHS), 2)
    assert cache.nbytes() == 2 * sum(LENGTHS) * 32 * 4 + len(LENGTHS) * 2 * 4

    _, logits_only = _pair(w_emb=0.0, w_feat=0.0, w_ce=0.0, w_logit=1.0)
    cache = logits_only.cache_teacher_outputs(ds)
    assert cache.hidden == {} and cache.scores == {} and cache.logits is not None


def test_cache_is_built_with_the_teacher_in_eval_mode():
    live, cached = _pair(w_emb=0.0, w_ce=0.0, w_logit=1.0, w_feat=1.0)
    ds = _dataset()
    cached.teacher.train()  # dropout 0.1 in the tiny BERT: the cache must not see it
    cached.cache_teacher_outputs(ds)
    assert not cached.teacher.training
    batch = _batch(ds, list(range(len(LENGTHS))))
    torch.testing.assert_close(cached(batch)["loss"], live(batch)["loss"], rtol=1e-5, atol=1e-6)


def test_stored_soft_labels_need_no_cached_logits():
    items = [{**it, "soft_labels": [0.5, -0.5]} for it in _dataset().items]
    _, d = _pair(w_emb=0.0, w_feat=0.0, w_ce=0.0, w_logit=1.0)
    assert d.cache_teacher_outputs(EncodedDataset(items)).logits is None


def test_training_follows_the_same_trajectory_with_the_cache():
    # dropout is off in the students (config default 0) and the teacher runs in eval mode, so
    # the only difference is float rounding of the teacher's outputs
    live, cached = _pair(**ALL_TERMS)
    ds = _dataset()
    cached.cache_teacher_outputs(ds, batch_size=4)
    cfg = TrainConfig(lr=1e-2, epochs=1)
    runs = []
    for d in (live, cached):
        d.train()
        params = d.trainable_parameters()
        opt = build_optimizer(params, cfg)
        sched = build_scheduler(opt, cfg, 4)
        losses = []
        for rows in ([0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 4]):
            terms = train_step(d, _batch(ds, rows), opt, sched, params, cfg.grad_clip)
            losses.append(terms["loss"].item())
        runs.append((losses, d.student.state_dict()))
    (l_live, w_live), (l_cached, w_cached) = runs
    assert l_cached == pytest.approx(l_live, rel=1e-5)
    assert l_live[0] != pytest.approx(l_live[-1], rel=1e-3)  # the students did move
    for k in w_live:
        torch.testing.assert_close(w_cached[k], w_live[k], rtol=1e-4, atol=1e-5)


def test_a_batch_without_index_is_refused_with_a_cache():
    _, d = _pair(**ALL_TERMS)
    ds = _dataset()
    d.cache_teacher_outputs(ds)
    batch = _batch(ds, [0, 1])
    del batch["index"]
    with pytest.raises(ValueError, match="index"):
        d(batch)
