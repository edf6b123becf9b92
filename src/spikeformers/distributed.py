"""Data-parallel training under ``torchrun``: process group, data sharding, metric reduction.

One code path serves 1 process and N processes. ``init_distributed`` reads torchrun's environment
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) and starts the
process group: ``nccl`` when training on CUDA, ``gloo`` on CPU. Without those variables it is a
no-op returning a one-process :class:`DistEnv`.

Batches. ``--batch-size`` is the *global* batch: the examples of one optimizer step summed over
every process and every accumulation micro-step. :class:`ShardedBatchSampler` draws the same
sequence of global batches on every rank (seeded per epoch, length-grouped, independent of the
world size) and gives rank ``r`` its slices of each one: ``world_size * grad_accum`` slices per
global batch, so every rank gets exactly ``grad_accum`` micro-batches per step and the same number
of batches per epoch. Each micro-batch carries a ``loss_scale``
(``n_slice * world_size / n_global``) so that, after DDP averages gradients over ranks, the update
is the gradient of the mean loss over the global batch: the same step as one process seeing the
whole batch (exactly so for losses that are means over examples, such as cross-entropy and the
logit KL). A short last batch with fewer examples than slices gives some ranks a placeholder
example with scale 0.

Evaluation. :func:`evaluate_sharded` scores every rank's stride of the data and gathers logits and
labels, so task metrics equal the one-process ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from spikeformers.data.text_classification import (
    EncodedDataset,
    LengthGroupedBatchSampler,
    PadCollator,
    make_dataloader,
)
from spikeformers.utils.device import pick_device

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank (0 writes files and shows progress).
        local_rank: Rank on this node (selects the GPU).
        world_size: Number of processes.
        device: This process's device.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Whether this process writes files, logs and shows progress bars."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:  # noqa: D102
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def init_distributed(device: str | None = None) -> DistEnv:
    """Start (or join) the process group described by torchrun's environment variables.

    Args:
        device: ``--device``. Under torchrun, ``None``/``cuda`` mean ``cuda:LOCAL_RANK`` and
            ``cpu`` trains on CPU with gloo; an explicit ``cuda:K`` is refused (torchrun assigns
            GPUs by local rank).

    Returns:
        This process's :class:`DistEnv` (one process without torchrun).
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistEnv(device=pick_device(device))
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if device not in (None, "", "auto", "cpu", "cuda"):
        raise ValueError(
            f"--device {device}: under torchrun give --device cuda (or cpu); each process uses "
            "GPU LOCAL_RANK"
        )
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPU(s): "
                "give torchrun --nproc_per_node <= the number of GPUs"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
        logger.info("process group: %s, rank %d of %d, device %s", backend, rank, world, dev)
    if rank != 0:  # one copy of the INFO lines is enough; warnings and errors still show
        logging.getLogger("spikeformers").setLevel(logging.WARNING)
    return DistEnv(rank=rank, local_rank=local_rank, world_size=world, device=dev)


def current_env(device: torch.device | str | None = None) -> DistEnv:
    """The :class:`DistEnv` of an already started process group (one process otherwise)."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = _env_int("LOCAL_RANK", rank)
        return DistEnv(rank=rank, local_rank=local, world_size=world, device=dev)
    return DistEnv(device=dev)


def is_main_process() -> bool:
    """Rank 0, or no process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def shutdown() -> None:
    """Destroy the process group if one is running."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_global_batch(batch_size: int, world_size: int, grad_accum: int) -> int:
    """The per-process micro-batch size; raises unless ``batch_size`` splits evenly."""
    parts = world_size * grad_accum
    if batch_size % parts:
        raise ValueError(
            f"--batch-size {batch_size} (the global batch) is not divisible by "
            f"{world_size} process(es) x --grad-accum {grad_accum} = {parts}; give a multiple "
            f"of {parts}"
        )
    return batch_size // parts


# -- collectives (no-ops in one process) --------------------------------------------------------


def all_gather_object(obj: Any, env: DistEnv) -> list[Any]:
    """Every rank's ``obj``, in rank order."""
    if not env.is_distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not env.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """Sum of ``t`` over ranks (in place)."""
    if env.is_distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def wrap_ddp(objective: nn.Module, env: DistEnv) -> nn.Module:
    """``DistributedDataParallel`` around the objective (returned unchanged in one process).

    Only parameters with ``requires_grad`` are synchronised, so a frozen teacher inside the
    objective is replicated, never reduced. ``find_unused_parameters`` is on because some trainable
    parameters sit idle in some stages (e.g. the classifier during general distillation).
    """
    if not env.is_distributed:
        return objective
    from torch.nn.parallel import DistributedDataParallel

    kwargs: dict[str, Any] = {"find_unused_parameters": True, "broadcast_buffers": False}
    if env.device.type == "cuda":
        kwargs.update(device_ids=[env.device.index], output_device=env.device.index)
    return DistributedDataParallel(objective, **kwargs)


# -- data ------------------------------------------------------------------------------------


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s order: each epoch's batches depend only on (seed, epoch)."""
    return (seed + 1_000_003 * epoch) % (2**63)


class ShardedBatchSampler(Sampler[list[tuple[int, float]]]):
    """This rank's micro-batches of seeded global batches; yields ``[(index, loss_scale), ...]``.

    Global batches are cut exactly as :class:`LengthGroupedBatchSampler` cuts them (or in plain
    random order without ``group_by_length``), seeded by :func:`epoch_seed`, so the order does not
    depend on the world size and an epoch can be restarted at any batch (``set_epoch``).

    Args:
        lengths: Token count of each example.
        global_batch_size: Examples per optimizer step, over all ranks and micro-steps.
        seed: Run seed.
        world_size: Number of processes.
        rank: This process's rank.
        grad_accum: Micro-batches per optimizer step on each rank.
        shuffle: Shuffle each epoch (else dataset order).
        group_by_length: Group similar lengths into a batch (less padding).
        drop_last: Drop the epoch's last global batch if it is smaller than
            ``global_batch_size`` (with ``group_by_length`` it is always the last one).
    """

    def __init__(
        self,
        lengths: Sequence[int],
        *,
        global_batch_size: int,
        seed: int = 0,
        world_size: int = 1,
        rank: int = 0,
        grad_accum: int = 1,
        shuffle: bool = True,
        group_by_length: bool = True,
        drop_last: bool = False,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of {world_size}")
        check_global_batch(global_batch_size, world_size, grad_accum)
        self.lengths = list(lengths)
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.world_size = world_size
        self.rank = rank
        self.grad_accum = grad_accum
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.drop_last = drop_last
        self.epoch = 0
        self.start = 0

    @property
    def num_global_batches(self) -> int:
        """Optimizer steps per epoch."""
        n = len(self.lengths)
        return n // self.global_batch_size if self.drop_last else -(-n // self.global_batch_size)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` from its global batch ``start`` on (used when resuming)."""
        self.epoch, self.start = epoch, start

    def __len__(self) -> int:
        return (self.num_global_batches - self.start) * self.grad_accum

    def global_batches(self, epoch: int) -> list[list[int]]:
        """The global batches of ``epoch`` (the same on every rank)."""
        seed = epoch_seed(self.seed, epoch)
        if self.group_by_length:
            base = LengthGroupedBatchSampler(
                self.lengths,
                batch_size=self.global_batch_size,
                shuffle=self.shuffle,
                seed=seed,
                drop_last=self.drop_last,
            )
            return list(base)
        n, size = len(self.lengths), self.global_batch_size
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(n, generator=g).tolist() if self.shuffle else list(range(n))
        return [order[i : i + size] for i in range(0, self.num_global_batches * size, size)]

    def shard(self, batch: list[int]) -> list[list[tuple[int, float]]]:
        """This rank's ``grad_accum`` micro-batches of one global batch, with loss scales."""
        n, parts = len(batch), self.world_size * self.grad_accum
        bounds = [k * n // parts for k in range(parts + 1)]  # sizes differ by at most one
        out = []
        for a in range(self.grad_accum):
            k = a * self.world_size + self.rank
            piece = batch[bounds[k] : bounds[k + 1]]
            if piece:
                scale = len(piece) * self.world_size / n
                out.append([(i, scale) for i in piece])
            else:  # fewer examples than slices: keep step counts equal, contribute nothing
                out.append([(batch[0], 0.0)])
        return out

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        for batch in self.global_batches(self.epoch)[self.start :]:
            yield from self.shard(batch)


class _ScaledItems(Dataset):
    """Looks up ``(index, scale)`` keys: returns ``(item, scale)``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, float]) -> tuple[dict, float]:
        i, scale = key
        return self.dataset[i], scale


class ScaledCollator:
    """Pad a micro-batch and attach its ``loss_scale`` (a Python float) to the batch."""

    def __init__(self, pad_token_id: int):
        self.pad = PadCollator(pad_token_id)

    def __call__(self, pairs: Sequence[tuple[dict, float]]) -> dict[str, Any]:  # noqa: D102
        batch: dict[str, Any] = self.pad([item for item, _ in pairs])
        batch["loss_scale"] = float(pairs[0][1])
        return batch


def make_train_loader(
    dataset: EncodedDataset,
    *,
    global_batch_size: int,
    seed: int,
    pad_token_id: int,
    env: DistEnv | None = None,
    grad_accum: int = 1,
    group_by_length: bool = True,
    drop_last: bool = False,
) -> DataLoader:
    """The training loader of this rank: :class:`ShardedBatchSampler` + padding.

    The loader has its own generator, so starting an epoch never draws from the global RNG
    (which drives dropout and must match between a resumed and an uninterrupted run).
    """
    env = env or DistEnv()
    lengths = (
        dataset.lengths
        if isinstance(dataset, EncodedDataset)
        else [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
    )
    sampler = ShardedBatchSampler(
        lengths,
        global_batch_size=global_batch_size,
        seed=seed,
        world_size=env.world_size,
        rank=env.rank,
        grad_accum=grad_accum,
        group_by_length=group_by_length,
        drop_last=drop_last,
    )
    return DataLoader(
        _ScaledItems(dataset),
        batch_sampler=sampler,
        collate_fn=ScaledCollator(pad_token_id),
        generator=torch.Generator().manual_seed(seed),
    )


# -- evaluation ------------------------------------------------------------------------------


def evaluate_sharded(
    model: nn.Module,
    dataset: Dataset,
    task,
    env: DistEnv,
    *,
    batch_size: int,
    pad_token_id: int = 0,
    group_by_length: bool = False,
) -> dict:
    """:func:`spikeformers.evaluation.evaluate` over all ranks: each scores every
    ``world_size``-th example, and the logits are gathered so the task metrics are those of the
    whole set. Firing rates add up every rank's spike counts (over real tokens, and padded as
    ``firing_rate_padded``: see :class:`~spikeformers.evaluation.FiringRates`), so they equal a
    single process's. ``group_by_length`` batches each rank's examples by length (only for a
    padding-invariant model; rows go back in dataset order).
    """
    from spikeformers.data.metrics import compute_metrics
    from spikeformers.evaluation import FiringRates, predict, record_firing_rates, spiking_modules

    indices = list(range(env.rank, len(dataset), env.world_size))
    spiking = bool(spiking_modules(model))
    logits = labels = None
    rates = FiringRates()
    if indices:
        loader = make_dataloader(
            Subset(dataset, indices),
            batch_size=batch_size,
            shuffle=False,
            pad_token_id=pad_token_id,
            group_by_length=group_by_length,
        )
        ctx = record_firing_rates(model) if spiking else contextlib.nullcontext()
        with ctx as recorded:
            logits, labels = predict(model, loader, env.device)
        rates = recorded if spiking else rates
    parts = all_gather_object((indices, logits, labels, rates), env)
    order, all_logits, all_labels = [], [], []
    total = FiringRates()
    for idx, lg, lb, part_rates in parts:
        total = total.merge(part_rates)
        if not idx:
            continue
        if lb is None:
            raise ValueError("evaluation needs labelled data")
        order += idx
        all_logits.append(lg)
        all_labels.append(lb)
    if not order:
        raise ValueError("evaluation got no examples")
    perm = torch.as_tensor(order).argsort()
    logits_t, labels_t = torch.cat(all_logits)[perm], torch.cat(all_labels)[perm]
    result: dict = dict(compute_metrics(logits_t, labels_t, task=task))
    result["num_examples"] = int(labels_t.shape[0])
    if spiking:
        result |= total.metrics()
    return result
