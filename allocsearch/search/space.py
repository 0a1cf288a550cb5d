"""Search spaces as data: YAML files that declare parameters and how a trial becomes a plan.

A space names its **parameters** (float, int or categorical; once, or once per decoder block,
per projection kind or per prunable module: ``per``, :mod:`allocsearch.search.layout`) and a
**plan recipe**: a ``base`` (``uniform``: every module at the target, or a registered allocator
whose parameters may reference space parameters, ``{allocator: ramp, params: {slope:
$slope}}``), then the steps it lists, applied in the order of the step registry
(:mod:`allocsearch.search.steps`: ``offset``, ``type_offset``, ``module_offset``, ``split``,
``layer_type``, ``structure``, ``guided_structure``; each a small class that declares the
parameters it reads, changes the draft plan and says which values reproduce a prior), then the
repair of the pins the budget cannot absorb and the projection to the exact budget (``bounds``
are the per-module limits).

``target`` may name a float parameter, for studies that trade fitness against sparsity.
Adding a space is writing a YAML file; :meth:`SearchSpace.suggest` is the only code in the
project that calls ``trial.suggest_*``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from allocsearch.budget import DEFAULT_BOUNDS
from allocsearch.io import json_digest
from allocsearch.plan import Plan
from allocsearch.search.layout import SpaceLayout
from allocsearch.search.params import ParamSpec, SpaceError, check_keys, parse_param
from allocsearch.search.steps import STEPS, Draft, Step, StepError, finish

if TYPE_CHECKING:
    import optuna

    from allocsearch.profile import Profile

SPACE_SCHEMA_VERSION = 1
_TOP_KEYS = {"schema_version", "name", "description", "bounds", "parameters", "plan"}
_PLAN_KEYS = {"base", "target", *STEPS}


@dataclass(frozen=True)
class SearchSpace:
    name: str
    description: str
    parameters: dict[str, ParamSpec]
    recipe: dict[str, Any]
    bounds: tuple[float, float] = DEFAULT_BOUNDS
    source: str = field(default="", compare=False)
    #: The plan recipe as written (``recipe`` holds the step objects built from it).
    plan_spec: dict[str, Any] = field(default_factory=dict, compare=False)

    def digest(self) -> str:
        """A digest of what the space proposes (parameters, recipe, bounds), not its name."""
        raw = {"parameters": {n: asdict(p) for n, p in sorted(self.parameters.items())},
               "plan": self.plan_spec, "bounds": list(self.bounds)}
        return json_digest(raw)

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        """Load and validate a space from a YAML file (safe loader)."""
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            raise SpaceError(f"{p}: not valid YAML ({exc})") from exc
        return cls.from_dict(data, str(p))

    @classmethod
    def from_dict(cls, data: Any, where: str = "space") -> SearchSpace:
        check_keys(data, _TOP_KEYS, where)
        version = data.get("schema_version", SPACE_SCHEMA_VERSION)
        if version != SPACE_SCHEMA_VERSION:
            raise SpaceError(f"{where}: schema_version {version!r} is not supported "
                             f"(this allocsearch reads {SPACE_SCHEMA_VERSION})")
        params_raw = data.get("parameters") or {}
        if not isinstance(params_raw, dict):
            raise SpaceError(f"{where}: parameters must be a mapping of name -> spec")
        params = {n: parse_param(n, spec, where) for n, spec in params_raw.items()}
        bounds = data.get("bounds", list(DEFAULT_BOUNDS))
        if (not isinstance(bounds, list) or len(bounds) != 2
                or not 0.0 <= float(bounds[0]) <= float(bounds[1]) < 1.0):
            raise SpaceError(f"{where}: bounds must be [low, high] with 0 <= low <= high < 1")
        recipe = _recipe(data.get("plan") or {}, params, where)
        return cls(str(data.get("name", Path(where).stem)), str(data.get("description", "")),
                   params, recipe, (float(bounds[0]), float(bounds[1])), where,
                   dict(data.get("plan") or {}))

    # --------------------------------------------------------------- sampling
    def suggest(self, trial: optuna.Trial, layout: SpaceLayout) -> dict[str, Any]:
        """Ask the trial for every parameter: the one place ``trial.suggest_*`` is called."""
        values: dict[str, Any] = {}
        for spec in self.parameters.values():
            for name in spec.names(layout):
                if spec.type == "categorical":
                    values[name] = trial.suggest_categorical(name, list(spec.choices))
                elif spec.type == "int":
                    assert spec.low is not None and spec.high is not None
                    values[name] = trial.suggest_int(name, int(spec.low), int(spec.high),
                                                     step=int(spec.step or 1), log=spec.log)
                else:
                    assert spec.low is not None and spec.high is not None
                    values[name] = trial.suggest_float(name, spec.low, spec.high,
                                                       step=spec.step, log=spec.log)
        return values

    def target_of(self, values: dict[str, Any], default: float) -> float:
        ref = self.recipe.get("target")
        return float(values[ref]) if ref else default

    # ---------------------------------------------------------- values -> plan
    def build_plan(self, values: dict[str, Any], profile: Profile, target: float) -> Plan:
        """The plan a trial's values describe, projected to its exact budget.

        The base gives every module a start value, then each step of the recipe changes the
        draft (:mod:`allocsearch.search.steps`). Pins the budget cannot absorb are undone (the
        plan's provenance lists those blocks under ``unstructured_instead``). Raises SpaceError
        when the target is still out of reach (bounds too tight for it)."""
        ident = profile.identity
        t = self.target_of(values, target)
        base = self.recipe["base"]
        if base == "uniform":
            start = {n: t for n in ident.shapes}
        else:
            from allocsearch.allocation import get_allocator

            params = {k: values[v[1:]] if isinstance(v, str) and v.startswith("$") else v
                      for k, v in base["params"].items()}
            start = get_allocator(base["allocator"], **params).allocate(profile, t).sparsities()
        draft = Draft(ident, t, dict(start), profile=profile)
        try:
            for step in self.steps:
                step.apply(draft, values)
            return finish(draft, self.bounds, {"method": "search", "space": self.name,
                                               "params": dict(values), "target": t})
        except (StepError, ValueError) as exc:
            raise SpaceError(f"infeasible choices for target {t}: {exc}") from exc

    @property
    def steps(self) -> list[Step]:
        return [self.recipe[key] for key in STEPS if key in self.recipe]

    # ----------------------------------------------------------- warm starts
    def params_for_prior(self, method: str, params: dict[str, Any], prior: Plan) -> dict[str, Any] | None:
        """Trial parameters that reproduce a prior's plan in this space, or None when the
        space cannot express it. A space built on the same allocator takes the prior's
        parameters (its additive steps at 0); otherwise each step says what reproduces the
        prior (a uniform base with block offsets takes its block sparsities, per-module
        offsets take what is left of each module's; the structure step takes a structured
        prior's actions)."""
        base = self.recipe["base"]
        values: dict[str, Any] = {}
        same_base = base != "uniform" and base["allocator"] == method
        if same_base:
            for key, ref in base["params"].items():
                if isinstance(ref, str) and ref.startswith("$"):
                    spec = self.parameters[ref[1:]]
                    values[spec.name] = spec.clip(params.get(key, 0.0)) if spec.type != "categorical" \
                        else params.get(key)
        elif base != "uniform":
            return None
        structured = bool(prior.structured())
        if structured and not any(step.structured for step in self.steps):
            return None
        shapes = {"offset", "module_offset"} & set(self.recipe)  # steps that shape an allocation
        if not structured and method != "uniform" and not same_base and not shapes:
            return None
        layout = SpaceLayout.of(prior.model)
        # The draft the additive steps make from the values chosen so far (uniform base only):
        # a later step reproduces what is left of the prior.
        draft = Draft(prior.model, prior.target, dict.fromkeys(prior.model.shapes, prior.target),
                      _layout=layout) if base == "uniform" else None
        for step in self.steps:
            if same_base and step.additive:  # the base reproduces the prior already
                got: dict[str, Any] | None = step.neutral(layout)
            else:
                got = step.prior_values(prior, layout, dict(draft.values) if draft else None)
            if got is None:
                return None
            values |= got
            if draft is not None and step.additive:
                step.apply(draft, values)
        if self.recipe.get("target"):
            spec = self.parameters[self.recipe["target"]]
            values[spec.name] = spec.clip(prior.target)
        return values


def _recipe(plan: Any, params: dict[str, ParamSpec], where: str) -> dict[str, Any]:
    at = f"{where}: plan"
    check_keys(plan, _PLAN_KEYS, at, "step(s)")
    base = plan.get("base", "uniform")
    if base != "uniform":
        from allocsearch.allocation import ALLOCATORS

        if not isinstance(base, dict) or "allocator" not in base:
            raise SpaceError(f"{at}.base: 'uniform' or {{allocator: NAME, params: {{...}}}}")
        if base["allocator"] not in ALLOCATORS:
            raise SpaceError(f"{at}.base: unknown allocator {base['allocator']!r}; "
                             f"known: {', '.join(ALLOCATORS)}")
        base = {"allocator": base["allocator"], "params": dict(base.get("params") or {})}
        for key, ref in base["params"].items():
            if isinstance(ref, str) and ref.startswith("$") and ref[1:] not in params:
                raise SpaceError(f"{at}.base.params.{key}: {ref} names no declared parameter")
    out: dict[str, Any] = {"base": base}
    for key, cls in STEPS.items():
        raw = plan.get(key)
        if raw is None:
            continue
        refs = {"value": raw} if isinstance(raw, str) else raw
        if not isinstance(refs, dict) or not all(isinstance(v, str) for v in refs.values()):
            raise SpaceError(f"{at}.{key}: a parameter name, or a mapping role -> parameter name")
        try:
            out[key] = cls(dict(refs), params, at)
        except StepError as exc:
            raise SpaceError(str(exc)) from exc
    ref = plan.get("target")
    if ref is not None:
        spec = params.get(ref)
        if spec is None:
            raise SpaceError(f"{at}.target: {ref!r} names no declared parameter")
        if spec.type != "float" or spec.per != "none":
            raise SpaceError(f"{at}.target: parameter {ref!r} must be a float with per: none")
        out["target"] = ref
    return out


def shipped_dir(kind: str) -> Path:
    """The folder of the spaces or study configs installed with the package (package data
    ``allocsearch.spaces`` / ``allocsearch.studies``, the repository's ``spaces/`` and
    ``studies/`` in an editable install)."""
    import importlib.resources

    return Path(str(importlib.resources.files(f"allocsearch.{kind}")))


def find_space(name_or_path: str | Path, search_dirs: list[Path] | None = None) -> SearchSpace:
    """Load a space by path, or by name from ``spaces/`` (the working directory's, then the
    ones shipped with the package)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return SearchSpace.load(p)
    dirs = search_dirs or [Path.cwd() / "spaces", shipped_dir("spaces")]
    for d in dirs:
        for cand in (d / f"{p.name}", d / f"{p.name}.yaml"):
            if cand.is_file():
                return SearchSpace.load(cand)
    known = sorted({f.stem for d in dirs if d.is_dir() for f in d.glob("*.yaml")})
    raise SpaceError(f"no search space {str(name_or_path)!r}; known: {', '.join(known) or 'none'}")


__all__ = ["SPACE_SCHEMA_VERSION", "ParamSpec", "SearchSpace", "SpaceError", "find_space", "shipped_dir"]
