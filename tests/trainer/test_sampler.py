"""ShardedBatchSampler: global batches independent of the world size, equal shares, resumable."""

from __future__ import annotations

import random

import pytest

from spikeformers.distributed import ShardedBatchSampler, check_global_batch

LENGTHS = [random.Random(0).randint(3, 40) for _ in range(45)]


def sampler(
    world: int = 1, rank: int = 0, accum: int = 1, batch: int = 8, drop: bool = False
) -> ShardedBatchSampler:
    return ShardedBatchSampler(
        LENGTHS,
        global_batch_size=batch,
        seed=3,
        world_size=world,
        rank=rank,
        grad_accum=accum,
        drop_last=drop,
    )


@pytest.mark.parametrize("drop", [False, True])
@pytest.mark.parametrize(("world", "accum"), [(2, 1), (4, 1), (2, 2), (1, 4)])
def test_shards_recompose_the_one_process_batches(world, accum, drop):
    one = sampler(drop=drop).global_batches(epoch=1)
    shards = []
    for r in range(world):
        s = sampler(world, r, accum, drop=drop)
        s.set_epoch(1)
        shards.append(list(s))
    assert {len(x) for x in shards} == {len(one) * accum}  # every rank: same number of batches
    for step, batch in enumerate(one):
        got, scale_sum = [], 0.0
        for a in range(accum):
            for r in range(world):
                micro = shards[r][step * accum + a]
                scale_sum += sum(s for _, s in micro) / max(len(micro), 1)
                got += [i for i, s in micro if s > 0]
        assert sorted(got) == sorted(batch)  # nothing lost or repeated (placeholders weigh 0)
        assert scale_sum == pytest.approx(world)  # DDP divides by world: the global mean


def test_epochs_differ_and_set_epoch_start_skips_batches():
    s = sampler()
    assert s.global_batches(0) != s.global_batches(1)
    s.set_epoch(2, start=3)
    assert len(s) == s.num_global_batches - 3
    assert [[i for i, _ in b] for b in s] == s.global_batches(2)[3:]


@pytest.mark.parametrize("grouped", [True, False])
def test_drop_last_removes_only_the_short_batch(grouped):
    def make(drop: bool) -> ShardedBatchSampler:
        return ShardedBatchSampler(
            LENGTHS, global_batch_size=8, seed=3, group_by_length=grouped, drop_last=drop
        )

    kept, dropped = make(False).global_batches(1), make(True).global_batches(1)
    assert [len(b) for b in kept] == [8, 8, 8, 8, 8, 5]  # 45 examples
    assert dropped == kept[:5]
    assert make(True).num_global_batches == len(make(True)) == 5


def test_global_batch_must_split_evenly():
    assert check_global_batch(32, 4, 2) == 4
    with pytest.raises(ValueError, match="--batch-size 30 .* not divisible by 4 process"):
        check_global_batch(30, 4, 1)
