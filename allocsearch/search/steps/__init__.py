"""The registry of search-space steps, in the order a recipe applies them."""

from __future__ import annotations

from allocsearch.search.steps.base import Draft, Pin, Step, StepError
from allocsearch.search.steps.finish import finish
from allocsearch.search.steps.guided import GuidedStructureStep
from allocsearch.search.steps.layer_type import LayerTypeStep
from allocsearch.search.steps.module_offset import ModuleOffsetStep
from allocsearch.search.steps.offset import OffsetStep
from allocsearch.search.steps.split import SplitStep
from allocsearch.search.steps.structure import StructureStep
from allocsearch.search.steps.type_offset import TypeOffsetStep

#: key under ``plan:`` -> step class, in application order
STEPS: dict[str, type[Step]] = {
    OffsetStep.key: OffsetStep,
    TypeOffsetStep.key: TypeOffsetStep,
    ModuleOffsetStep.key: ModuleOffsetStep,
    SplitStep.key: SplitStep,
    LayerTypeStep.key: LayerTypeStep,
    StructureStep.key: StructureStep,
    GuidedStructureStep.key: GuidedStructureStep,
}

__all__ = ["STEPS", "Draft", "Pin", "Step", "StepError", "finish"]
