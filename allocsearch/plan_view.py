"""Human views of a plan: a per-block table and a per-layer bar chart (PNG)."""

from __future__ import annotations

from pathlib import Path

from allocsearch.io import atomic_write_figure
from allocsearch.models.adapters import layer_kind
from allocsearch.plan import Plan, block_of


def _kind(plan: Plan, name: str) -> str:
    """attn or mlp, as the model adapter classifies the layer."""
    return "attn" if layer_kind(plan.model.architecture, name) == "attention" else "mlp"


def block_rows(plan: Plan) -> list[dict[str, float]]:
    """Per block: parameter-weighted sparsity of attention, MLP and the whole block."""
    sums: list[dict[str, list[float]]] = [
        {"attn": [0.0, 0.0], "mlp": [0.0, 0.0]} for _ in range(plan.model.num_blocks)
    ]
    for name, c in plan.modules.items():
        acc = sums[block_of(name)][_kind(plan, name)]
        acc[0] += c.sparsity * plan.model.numel(name)
        acc[1] += plan.model.numel(name)
    rows = []
    for b, s in enumerate(sums):
        total = s["attn"][1] + s["mlp"][1]
        rows.append({
            "block": float(b),
            "attn": s["attn"][0] / s["attn"][1] if s["attn"][1] else 0.0,
            "mlp": s["mlp"][0] / s["mlp"][1] if s["mlp"][1] else 0.0,
            "all": (s["attn"][0] + s["mlp"][0]) / total if total else 0.0,
        })
    return rows


def plan_table(plan: Plan) -> str:
    lines = [
        f"plan for {plan.model.name} ({plan.model.architecture}, {plan.model.num_blocks} blocks, "
        f"fingerprint {plan.model.fingerprint})",
        f"method {plan.provenance.get('method', '?')} {plan.provenance.get('params', '')}",
        f"target {plan.target:.4f}  budget {plan.budget():.6f}  modules {len(plan.modules)}",
        "",
        f"{'block':>5}  {'attn':>6}  {'mlp':>6}  {'block':>6}  structured action",
    ]
    actions = plan.structured()
    for r in block_rows(plan):
        b = int(r["block"])
        action = " ".join(f"{k}={v}" for k, v in actions[b].to_dict().items()) if b in actions else ""
        lines.append(f"{b:>5}  {r['attn']:>6.3f}  {r['mlp']:>6.3f}  {r['all']:>6.3f}  {action}".rstrip())
    patterns = sorted({str(c.pattern) for c in plan.modules.values()})
    lines.append(f"patterns: {', '.join(patterns)}")
    return "\n".join(lines)


def plot_plan(plan: Plan, path: str | Path, compare: dict[str, Plan] | None = None) -> Path:
    """Bar chart of every module's sparsity in model order, coloured by attn/MLP, with the
    target line and block averages of any plans to compare against."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(plan.modules)
    values = [plan.modules[n].sparsity for n in names]
    colors = ["tab:blue" if _kind(plan, n) == "attn" else "tab:orange" for n in names]
    per_block = len(names) / plan.model.num_blocks
    fig, ax = plt.subplots(figsize=(max(8.0, len(names) / 16), 4.0))
    ax.bar(range(len(names)), values, color=colors, width=1.0)
    ax.axhline(plan.target, color="black", lw=1, ls="--", label=f"target {plan.target:.2f}")
    line_colors = ["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:gray", "tab:olive"]
    for i, (label, other) in enumerate((compare or {}).items()):
        xs = [(b + 0.5) * per_block for b in range(other.model.num_blocks)]
        ax.plot(xs, other.block_sparsity(), marker=".", lw=1.5, label=f"{label} (block mean)",
                color=line_colors[i % len(line_colors)])
    step = max(1, plan.model.num_blocks // 10)
    ticks = list(range(0, plan.model.num_blocks, step))
    ax.set_xticks([b * per_block for b in ticks], [str(b) for b in ticks])
    ax.set_xlabel("block (each bar a module in model order; blue attention, orange MLP)")
    ax.set_ylabel("sparsity")
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylim(0, 1)
    ax.set_title(f"{plan.provenance.get('method', 'plan')} on {plan.model.name}: "
                 f"budget {plan.budget():.3f}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = atomic_write_figure(Path(path), fig, dpi=120)
    plt.close(fig)
    return out
