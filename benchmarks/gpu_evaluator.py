"""The Evaluator on CUDA, float32 and bfloat16: the exactness checks of the CPU test suite
(which has no GPU), on the real model.

    python benchmarks/gpu_evaluator.py            # needs a CUDA device

For each dtype: cached masks equal a fresh one-shot Wanda prune computed on the GPU from
dense activations; restore leaves every weight bit-identical (after fitness and after a
sequential verification); KL of the dense model to itself is ~0; prints fitness values.
Writes benchmarks/results/gpu_evaluator.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import environment, print_table, write_json

from allocsearch.budget import identity_from_adapter, random_plan
from allocsearch.data import DataConfig, calibration_windows
from allocsearch.evaluate import Evaluator, EvaluatorConfig, VerifyConfig, verify
from allocsearch.models import load_model
from allocsearch.pruners import StatsAccumulator, WandaPruner

PROFILE = DataConfig("embedded", 8, 256, 0)


def check(dtype: str, device: str) -> dict[str, Any]:
    lm = load_model("smollm2-135m", device=device, dtype=dtype)
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    config = EvaluatorConfig(fitness="kl", fidelities=(2048, 8192), profile=PROFILE, batch_size=4)
    t = time.perf_counter()
    ev = Evaluator.build(lm, config, progress=False)
    build_s = time.perf_counter() - t
    dense_kl = ev.fitness(None)
    plan = random_plan(identity_from_adapter(lm.adapter, lm.name), 0.65, seed=1)
    kl = [s.value for s in ev.iter_fitness(plan)]
    ppl = ev.fitness(plan, fitness="ppl")
    dense_ppl = ev.fitness(None, fitness="ppl")

    # Fresh Wanda on the GPU from one dense forward over the profile's windows.
    ev.restore()
    adapter = lm.adapter
    layers = adapter.prunable_layers()
    accs = {n: StatsAccumulator(adapter.get_weight(m).shape[1], norms=True, hessian=False,
                                device=lm.device) for n, m in layers.items()}
    handles = [m.register_forward_hook(lambda _m, i, _o, a=accs[n]: a.add(i[0]))
               for n, m in layers.items()]
    with torch.no_grad():
        for w in calibration_windows(lm.tokenizer, "embedded", 8, 256, 0):
            lm.model(input_ids=w[None].to(lm.device))
    for h in handles:
        h.remove()
    ev.apply(plan)
    mism = 0
    for n, m in layers.items():
        fresh = WandaPruner().prune(ev.backend.dense[n], accs[n].result(), plan.modules[n].sparsity)
        mism += not torch.equal(adapter.get_weight(m), fresh.weight)
    ev.restore()
    same_after_fitness = all(torch.equal(v, before[k]) for k, v in lm.model.state_dict().items())
    v = verify(ev, plan, VerifyConfig("wanda", DataConfig("embedded", 16, 256, 0), nsamples=40,
                                     batch_size=4))
    same_after_verify = all(torch.equal(v_, before[k]) for k, v_ in lm.model.state_dict().items())
    ev.close()
    return {
        "dtype": dtype, "build_s": build_s, "dense_kl": dense_kl, "kl@2048": kl[0],
        "kl@8192": kl[1], "dense_ppl@8192": dense_ppl, "ppl@8192": ppl,
        "layers_not_equal_fresh_wanda": mism, "restored_after_fitness": same_after_fitness,
        "restored_after_verify": same_after_verify, "verified_ppl": v.ppl,
        "verified_sparsity": v.achieved_sparsity,
    }


def main() -> None:
    device = sys.argv[1] if len(sys.argv) > 1 else "cuda"  # "cpu" to try the script itself
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("needs a CUDA device")
    rows = [check(d, device) for d in ("float32", "bfloat16")]
    print_table(rows, list(rows[0]))
    path = write_json(f"gpu_evaluator_{device}.json", {"environment": environment(), "rows": rows},
                      protocol={"device": device, "dtype": "float32, bfloat16", "model": "smollm2-135m",
                                "data": "embedded", "calibration": "16 x 256, seed 0 (verification)",
                                "evaluation": "40 x 512 evaluation windows", "seeds": [0]})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
