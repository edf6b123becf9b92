"""The inference path: ``predict``/``evaluate`` under ``torch.inference_mode``, the neurons' no-grad
fast paths (bitwise the autograd path's outputs), and length-bucketed evaluation batches (rows
back in dataset order; metrics, logits and real-token firing rates those of plain batches)."""

from __future__ import annotations

import pytest
import torch

from spikeformers import create_model, list_models
from spikeformers.data import TaskSpec, make_dataloader
from spikeformers.evaluation import evaluate, padding_invariant, predict, record_firing_rates
from tests.conftest import tiny_overrides

VOCAB = 50
TASK = TaskSpec("toy", 2, ("neg", "pos"))
CPU = torch.device("cpu")
# Logits of an example in a bucketed vs a plain batch: only the padding around it differs, so
# they agree to float rounding (the same tolerance as tests/models/test_padding.py).
RTOL, ATOL = 1e-5, 1e-6


def _model(name: str):
    torch.manual_seed(0)
    return create_model(name, **tiny_overrides(VOCAB, name=name)).eval()


def _items(n: int = 23, seed: int = 1) -> list[dict]:
    """``n`` labelled items of lengths 2..12 in a shuffled order (pad id 0 never used)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 13, (n,), generator=g).tolist()
    return [
        {
            "input_ids": torch.randint(1, VOCAB, (k,), generator=g).tolist(),
            "label": i % 2,
            "index": i,
        }
        for i, k in enumerate(lengths)
    ]


def _loader(items: list[dict], *, bucketed: bool, batch_size: int = 4):
    return make_dataloader(
        items, batch_size=batch_size, shuffle=False, group_by_length=bucketed, pad_token_id=0
    )


@pytest.mark.parametrize("name", list_models())
def test_outputs_with_and_without_grad_are_bitwise_equal(name):
    # Grad on: the neurons' autograd Functions; inference mode: their no-ctx fast paths.
    model = _model(name)
    ids = torch.tensor([[5, 9, 13, 7, 21], [8, 30, 2, 0, 0]])
    mask = (ids != 0).long()
    with torch.enable_grad():
        with_grad = model(ids, attention_mask=mask).logits
    assert with_grad.requires_grad
    with torch.inference_mode():
        without = model(ids, attention_mask=mask).logits
    assert torch.equal(with_grad.detach(), without)


def test_surrogate_fast_path_is_the_heaviside_and_builds_no_graph():
    from spikeformers.neurons import ATan

    x = torch.tensor([-1.0, -0.0, 0.0, 1e-8, 2.0], requires_grad=True)
    with torch.no_grad():
        s = ATan()(x)
    assert s.grad_fn is None
    assert s.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]  # H(x) = [x >= 0]


def test_predict_runs_in_inference_mode_and_restores_training_mode():
    model = _model("spikebert-tiny").train()
    seen = []
    model.register_forward_pre_hook(lambda *_: seen.append(torch.is_inference_mode_enabled()))
    predict(model, _loader(_items(), bucketed=False), CPU)
    assert seen and all(seen)
    assert model.training


def test_training_works_after_an_evaluation():
    # Nothing created under inference mode may leak into the next training step.
    # Its gradients are those of the same model never evaluated.
    ids = torch.tensor([[5, 9, 13], [8, 30, 0]])
    grads = []
    for evaluated in (True, False):
        model = _model("snnbert-tiny").train()
        if evaluated:
            evaluate(model, _loader(_items(), bucketed=True), TASK, CPU)
        out = model(ids, attention_mask=(ids != 0).long(), labels=torch.tensor([0, 1]))
        out.loss.backward()
        grads.append([p.grad for p in model.parameters()])
    assert any(g is not None for g in grads[0])
    for a, b in zip(*grads, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_padding_invariant_models():
    invariant = {n for n in list_models() if padding_invariant(_model(n))}
    assert invariant == {n for n in list_models() if not n.endswith("-paper")}


def test_bucketed_loader_reorders_the_batches():
    # The premise of the tests below: bucketing does change batch composition and padding.
    items = _items()
    plain, bucketed = _loader(items, bucketed=False), _loader(items, bucketed=True)
    assert sum(b["input_ids"].numel() for b in bucketed) < sum(
        b["input_ids"].numel() for b in plain
    )
    assert torch.cat([b["index"] for b in bucketed]).tolist() != list(range(len(items)))


@pytest.mark.parametrize("name", [n for n in list_models() if padding_invariant(_model(n))])
def test_bucketed_evaluation_equals_plain_order(name):
    model, items = _model(name), _items()
    plain_logits, plain_labels = predict(model, _loader(items, bucketed=False), CPU)
    logits, labels = predict(model, _loader(items, bucketed=True), CPU)
    # Independent expectation: each example scored alone (no padding at all), in dataset order.
    alone = torch.cat(
        [predict(model, _loader([it], bucketed=False, batch_size=1), CPU)[0] for it in items]
    )
    assert torch.equal(labels, torch.tensor([it["label"] for it in items]))
    assert torch.equal(plain_labels, labels)
    torch.testing.assert_close(logits, alone, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(plain_logits, alone, rtol=RTOL, atol=ATOL)
    m_plain = evaluate(model, _loader(items, bucketed=False), TASK, CPU)
    m_bucket = evaluate(model, _loader(items, bucketed=True), TASK, CPU)
    assert m_bucket["accuracy"] == m_plain["accuracy"]
    assert m_bucket["num_examples"] == len(items)
    # Real-token firing rates: spike counts are integers summed in float64, so equal up to the
    # rounding of the final division.
    assert m_bucket["firing_rates"].keys() == m_plain["firing_rates"].keys()
    for k, rate in m_plain["firing_rates"].items():
        assert m_bucket["firing_rates"][k] == pytest.approx(rate, rel=1e-12, abs=1e-15)
    assert m_bucket["firing_rate"] == pytest.approx(m_plain["firing_rate"], rel=1e-12)


def test_real_token_firing_rate_is_that_of_each_example_alone():
    # Independent of batching: spikes over real tokens with examples one at a time (no padding).
    model, items = _model("spikebert-tiny"), _items()
    with record_firing_rates(model) as alone:
        for it in items:
            predict(model, _loader([it], bucketed=False, batch_size=1), CPU)
    got = evaluate(model, _loader(items, bucketed=True), TASK, CPU)["firing_rates"]
    for k, rate in alone.layers().items():
        assert got[k] == pytest.approx(rate, rel=1e-12, abs=1e-15)


def test_paper_spikebert_is_scored_in_plain_batches_by_the_workflows(monkeypatch):
    from spikeformers.workflows import loaders

    seen = []
    monkeypatch.setattr(
        loaders, "make_dataloader", lambda *a, **k: seen.append(k["group_by_length"])
    )
    monkeypatch.setattr(loaders, "encode_examples", lambda *a, **k: [])

    class Tok:
        pad_token_id = 0

    from spikeformers.data.config import DataArgs

    for name in ("spikebert-tiny-paper", "spikebert-tiny"):
        loaders.evaluator(_model(name), [], Tok(), DataArgs(), 4, TASK, CPU, None)
    assert seen == [False, True]
