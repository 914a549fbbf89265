"""Plot and tabulate the action probe of teacher runs (their metrics.jsonl), side by side.

    python benchmarks/probe_curves.py runs/trials/plain runs/trials/steer1 --out docs/images/probe_trials.png

Left: the action gap at sigma 0.6 and 0.9 (1.00 = the keys do nothing). Middle: the x0 error at sigma 0.9 on
windows that moved, beside copying the frame before (the line to beat). Right: the direction check of sampled
rollouts with its chance level. The last probe of each run is printed as a markdown table row, with the rollout
check's last-chunk error beside copying where the run measured it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def probes(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [m for m in map(json.loads, filter(None, lines)) if "gap@0.6" in m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="teacher output folders")
    parser.add_argument("--out", type=Path, default=Path("probe_curves.png"), help="where to write the plot")
    args = parser.parse_args()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    print("| run | step | gap@0.3 | gap@0.6 | gap@0.9 | x0 err moved / copy | x0 err still | direction (chance) "
          "| rollout err first / last (copy) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in args.runs:
        p = probes(run)
        if not p:
            print(f"| {run.name} | no probe yet |")
            continue
        steps = [m["step"] + 1 for m in p]
        line = axes[0].plot(steps, [m["gap@0.6"] for m in p], label=f"{run.name} sigma 0.6")[0]
        axes[0].plot(steps, [m["gap@0.9"] for m in p], "--", color=line.get_color(), label=f"{run.name} sigma 0.9")
        axes[1].plot(steps, [m["x0_err_moved"] for m in p], color=line.get_color(), label=run.name)
        axes[1].plot(steps, [m["copy_err_moved"] for m in p], ":", color=line.get_color())
        if "direction" in p[0]:
            axes[2].plot(steps, [m["direction"] for m in p], color=line.get_color(), label=run.name)
            axes[2].plot(steps, [m["direction_chance"] for m in p], ":", color="grey")
        last = p[-1]
        direction = f"{last['direction']:.0%} ({last['direction_chance']:.0%})" if "direction" in last else "-"
        rollout = (f"{last['rollout_err_first']:.3f} / {last['rollout_err_last']:.3f} "
                   f"({last['rollout_copy_last']:.3f})" if "rollout_err_last" in last else "-")
        print(f"| {run.name} | {last['step'] + 1} | {last['gap@0.3']:.3f} | {last['gap@0.6']:.3f} | "
              f"{last['gap@0.9']:.3f} | {last['x0_err_moved']:.3f} / {last['copy_err_moved']:.3f} | "
              f"{last.get('x0_err_still', float('nan')):.3f} | {direction} | {rollout} |")
    axes[0].axhline(1.0, color="grey", lw=0.8)
    axes[0].set(xlabel="step", ylabel="wrong-key / true-key x0 error", title="action gap (1.00 = keys ignored)")
    axes[1].set(xlabel="step", ylabel="x0 MSE at sigma 0.9", title="moved windows: model vs copy-last (dotted)")
    axes[2].set(xlabel="step", ylabel="rollouts moving as the data", title="direction check (chance dotted)",
                ylim=(0, 1))
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
