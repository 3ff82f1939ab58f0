"""blockzoo.validation.design: which architectures a validation trains."""

import subprocess
import sys

import pytest

from blockzoo import cost, get_space
from blockzoo.space import ArchitectureError, sample_architectures
from blockzoo.validation import design
from blockzoo.validation.design import budget_band, explicit, resized_space, uniform


def test_uniform_is_the_papers_rule_without_the_reference():
    space = get_space("mbv3-tiny")
    archs = uniform(space, 40, 0)
    assert len(set(archs)) == 40 and space.reference not in archs
    # The first 40 non-reference draws of space.sample from one seeded generator.
    assert archs == [a for a in sample_architectures(space, 50, 0) if a != space.reference][:40]
    assert uniform(space, 40, 0) == archs and uniform(space, 40, 1) != archs


def test_budget_band_keeps_only_architectures_near_the_target():
    space = get_space("mbv3-tiny")
    target = cost(space, space.reference, 1, 10).macs * 0.5
    archs = budget_band(space, 12, 0, target, 0.1, in_channels=1, num_classes=10)
    assert len(set(archs)) == 12 and space.reference not in archs
    assert all(0.9 * target <= cost(space, a, 1, 10).macs <= 1.1 * target for a in archs)
    assert budget_band(space, 12, 0, target, 0.1, in_channels=1, num_classes=10) == archs


def test_an_impossible_band_says_what_to_change(monkeypatch):
    space = get_space("mbv3-tiny")
    monkeypatch.setattr(design, "MAX_DRAWS_PER_ARCH", 50)
    with pytest.raises(ValueError, match="widen the band or move the target"):
        budget_band(space, 2, 0, 1.0, 0.05)
    with pytest.raises(ValueError, match="fraction of the target"):
        budget_band(space, 2, 0, 1e6, 10)


def test_explicit_architectures_are_parsed_and_deduplicated():
    space = get_space("mbv3-tiny")
    assert explicit(space, ["d11111-e2.2.2.2.2", space.smallest.id]) == [space.smallest]
    with pytest.raises(ArchitectureError):
        explicit(space, ["not-an-architecture"])


def test_resized_space_keeps_the_modules_and_names_the_size():
    space = get_space("mbv3-tiny")
    assert resized_space(space, None) is space and resized_space(space, space.input_size) is space
    at28 = resized_space(space, 28)
    assert at28.name == "mbv3-tiny@28" and at28.input_size == 28 and at28.reference == space.reference


def test_the_validation_package_loads_without_torch():
    code = ("import sys, blockzoo.validation as v; v.validation_report; v.uniform; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
