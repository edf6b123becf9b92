"""The declared model interface: spiking modules found by base class, explicit registration,
the literal-algorithm switch, ``reset_classifier`` on the built-in families, errors and shims."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikeformers import create_model, registry
from spikeformers.energy import OpCounter
from spikeformers.evaluation import record_firing_rates, spiking_modules
from spikeformers.neurons.base import SpikingModule
from spikeformers.utils.literal import LiteralAlgorithmMode, literal_algorithm
from tests.conftest import tiny_overrides


class _Step(SpikingModule):
    """A new neuron type: ``x >= 0`` -> 1; nothing registers it anywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return (x >= 0).to(x.dtype)


class _Net(nn.Module):
    spike_layouts = (("*", "BLD"),)

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Identity(), _Step())

    def forward(self, x: torch.Tensor, *, attention_mask=None) -> torch.Tensor:  # noqa: D102
        return self.inner(x)


def test_a_new_neuron_type_is_found_by_its_base_class_alone():
    net = _Net()
    assert [n for n, _ in spiking_modules(net)] == ["inner.1"]
    x = torch.tensor([[[1.0, -1.0], [0.0, -2.0], [5.0, 5.0]]])  # [B=1, L=3, D=2]
    with record_firing_rates(net) as rates:
        net(x, attention_mask=torch.tensor([[1, 1, 0]]))
    assert rates.layers() == {"inner.1": 2 / 4}  # 2 spikes over the 2 real tokens' 4 neurons


def test_literal_algorithm_is_on_exactly_inside_the_mode_and_the_energy_counter():
    assert not literal_algorithm()
    with LiteralAlgorithmMode():
        assert literal_algorithm()
    assert not literal_algorithm()
    with OpCounter(nn.Identity()):
        assert literal_algorithm()
    assert not literal_algorithm()


def test_register_model_needs_its_family_named():
    with pytest.raises(TypeError):
        registry.register_model("nofamily-tiny", "x")  # family is a required keyword
    with pytest.raises(ValueError, match="family"):
        registry.register_model("nofamily-tiny", "x", family="")(lambda **kw: None)
    assert "nofamily-tiny" not in registry.list_models()


@pytest.mark.parametrize("name", ["spikebert-tiny", "snnbert-tiny", "spikingbert-tiny"])
def test_reset_classifier_equals_a_fresh_model_with_the_old_body(name):
    model = create_model(name, **tiny_overrides(50, name=name)).eval()
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    torch.manual_seed(3)
    model.reset_classifier(4)
    # The replacement as specified: a fresh model of the new config (same seed), old body loaded.
    torch.manual_seed(3)
    fresh = create_model(name, **tiny_overrides(50, num_labels=4, name=name)).eval()
    missing, unexpected = fresh.load_state_dict(body, strict=False)
    assert sorted(missing) == ["classifier.bias", "classifier.weight"] and not unexpected
    assert model.config == fresh.config
    ids = torch.tensor([[5, 9, 13, 7], [8, 30, 0, 0]])
    with torch.no_grad():
        assert torch.equal(
            model(ids, attention_mask=(ids != 0).long()).logits,
            fresh(ids, attention_mask=(ids != 0).long()).logits,
        )


def test_errors_and_moved_helpers_stay_importable_from_their_old_places():
    from spikeformers import errors
    from spikeformers.data.examples import DataError
    from spikeformers.models.base import CheckpointError
    from spikeformers.neurons import functional, lif_functional
    from spikeformers.pipeline import RunDirError
    from spikeformers.utils import device, seed

    assert errors.CheckpointError is CheckpointError
    assert errors.DataError is DataError and errors.RunDirError is RunDirError
    assert set(errors.__all__) >= {"CheckpointError", "DataError", "RunDirError", "TeacherError"}
    with pytest.raises(AttributeError):
        errors.NoSuchError  # noqa: B018
    assert seed.pick_device is device.pick_device
    assert functional.lif_multistep is lif_functional.lif_multistep
