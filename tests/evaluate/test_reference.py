"""The reference plan's three spellings parse to one canonical label, and bad ones fail
when the config is made (before any model is loaded)."""

from __future__ import annotations

import pytest

from allocsearch.evaluate import EvaluatorConfig
from allocsearch.evaluate.reference import ReferencePlan, canonical_reference


@pytest.mark.parametrize("raw", [
    "ramp slope=0.1",
    "  ramp   slope=0.1 ",
    {"method": "ramp", "slope": 0.1},
    {"method": "ramp", "params": {"slope": 0.1}},
])
def test_spellings_of_one_reference_share_its_label(raw: object) -> None:
    assert canonical_reference(raw) == "ramp slope=0.1"  # type: ignore[arg-type]


def test_label_sorts_parameters_and_keeps_their_types() -> None:
    ref = ReferencePlan.parse("owl lam=0.08 M=7")
    assert ref.params == {"lam": 0.08, "M": 7}
    assert isinstance(ref.params["M"], int)
    assert ref.label == "owl M=7 lam=0.08"
    assert ReferencePlan.parse(ref.label) == ref
    assert canonical_reference("uniform") == "uniform" and canonical_reference("none") == "none"


def test_the_config_stores_the_label_and_defaults_by_backend() -> None:
    cfg = EvaluatorConfig(masks="database", pruner="sparsegpt", reference={"method": "ramp", "slope": 0.3})  # type: ignore[arg-type]
    assert cfg.reference == "ramp slope=0.3"
    assert EvaluatorConfig(masks="database", pruner="sparsegpt").reference == "uniform"
    assert EvaluatorConfig().reference == "none"


@pytest.mark.parametrize(("raw", "message"), [
    ("magic", "reference must be 'none' or an allocator"),
    ("ramp slope", "key=value"),
    ("ramp slop=0.1", r"no parameter\(s\) \['slop'\]"),
    ({"slope": 0.1}, "needs a method"),
])
def test_bad_references_fail_with_the_reason(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvaluatorConfig(masks="database", pruner="sparsegpt", reference=raw)  # type: ignore[arg-type]
