"""Search spaces: presets as DESIGN §2, validation messages, sampling, ids, mutation/crossover."""

import json
import random

import pytest

from blockzoo.space import Architecture, ArchitectureError, SearchSpace, get_space, list_spaces, make_divisible


def test_presets_match_the_design():
    cifar, tiny = get_space("mbv3-cifar"), get_space("mbv3-tiny")
    assert cifar.widths == (24, 40, 80, 112, 160) and tiny.widths == (8, 16, 24, 32, 40)
    assert cifar.strides == tiny.strides == (1, 2, 2, 1, 2)
    assert cifar.use_se == (False, True, False, True, True)
    assert cifar.activations == ("relu", "relu", "hswish", "hswish", "hswish")
    assert (cifar.input_size, tiny.input_size) == (32, 16)
    assert (cifar.head_channels, cifar.feature_channels) == (960, 1280)
    assert (tiny.head_channels, tiny.feature_channels) == (240, None)
    assert cifar.size == (5 + 25 + 125 + 625) ** 5
    assert list_spaces() == ["mbv3-cifar", "mbv3-tiny"]


def test_make_divisible_rule():
    assert make_divisible(20) == 24 and make_divisible(4) == 8 and make_divisible(100) == 104
    assert make_divisible(10.5) == 16  # 8 would lose more than 10%


def test_every_stage_has_780_distinct_candidate_blocks():
    space = get_space("mbv3-tiny")
    blocks = space.stage_blocks(0)
    assert len(blocks) == 780 and len(set(blocks)) == 780


def test_canonical_id_round_trips_for_many_samples():
    space = get_space("mbv3-cifar")
    rng = random.Random(0)
    for _ in range(300):
        arch = space.sample(rng)
        assert space.parse(arch.id) == arch
        assert space.parse(arch.to_dict()) == arch
        assert space.parse(json.loads(json.dumps(arch.to_dict()))) == arch
    assert space.reference.id == "d44444-eaaaa.aaaa.aaaa.aaaa.aaaa"
    example = space.parse({"depths": [4, 2, 3, 1, 4], "expand": [[6, 6, 4, 2], [10, 8], [4, 4, 2], [6], [8, 8, 8, 10]]})
    assert example.id == "d42314-e6642.a8.442.6.888a"


def test_sampling_is_per_stage_depth_then_ratio_and_seeded():
    space = get_space("mbv3-tiny")
    a = [space.sample(random.Random(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(1)
    archs = [space.sample(rng) for _ in range(4000)]
    depth_counts = {d: sum(x.depths[0] == d for x in archs) for d in (1, 2, 3, 4)}
    assert all(900 < c < 1100 for c in depth_counts.values()), depth_counts  # uniform depth, not uniform block


@pytest.mark.parametrize("config, fragment", [
    ({"depths": [4, 2, 3, 1, 5], "expand": [[6] * 4, [8] * 2, [4] * 3, [6], [8] * 5]}, "stage 5: depth 5 is not allowed"),
    ({"depths": [1, 1, 1, 1, 1], "expand": [[6], [7], [4], [6], [8]]}, "stage 2, layer 1: expansion ratio 7"),
    ({"depths": [2, 1, 1, 1, 1], "expand": [[6], [6], [4], [6], [8]]}, "stage 1: depth is 2 but 1 expansion"),
    ({"depths": [1, 1, 1, 1], "expand": [[6], [6], [4], [6]]}, "has 5 stages"),
    ({"expand": [[6], [6], [4], [6], ["x"]]}, "integer expansion ratios"),
])
def test_invalid_configs_name_stage_and_allowed_values(config, fragment):
    with pytest.raises(ArchitectureError) as err:
        get_space("mbv3-tiny").parse(config)
    assert fragment in str(err.value)
    if "expansion ratio 7" in fragment:
        assert "[2, 4, 6, 8, 10]" in str(err.value)


def test_malformed_ids_are_rejected():
    space = get_space("mbv3-tiny")
    for bad in ["", "x", "d4-e", "d11111-e2.2.2.2", "d11111-e2.2.2.2.!", "d11111-e3.2.2.2.2"]:
        with pytest.raises(ArchitectureError):
            space.parse(bad)


def test_mutation_and_crossover_stay_in_the_space():
    space = get_space("mbv3-tiny")
    rng = random.Random(3)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        space.validate(space.mutate(a, rng, 0.3))
        child = space.crossover(a, b, rng)
        space.validate(child)
        for m, d in enumerate(child.depths):
            assert d in (a.depths[m], b.depths[m])
    assert space.mutate(a, rng, 0.0) == a


def test_custom_space_round_trips_and_is_validated():
    space = get_space("mbv3-tiny")
    assert SearchSpace.from_dict(space.to_dict()) == space
    data = space.to_dict() | {"name": "custom", "widths": [8, 16, 24, 32, 48], "expand_choices": [3, 6]}
    custom = SearchSpace.from_dict(data)
    assert custom.reference == Architecture((4,) * 5, ((6,) * 4,) * 5)
    with pytest.raises(ArchitectureError, match="strides"):
        SearchSpace.from_dict(space.to_dict() | {"strides": [1, 2]})
    with pytest.raises(ArchitectureError, match="unknown search-space field"):
        SearchSpace.from_dict(space.to_dict() | {"colour": "red"})
    with pytest.raises(ArchitectureError, match="known spaces"):
        get_space("resnet")
