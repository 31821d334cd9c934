"""Examples shown under each command's ``--help`` (the epilog), one table for every command so
the commands of every topic module read alike. Each example runs as written on the built-in
cases (``perfcost cases`` lists them); tests/test_help.py checks every command has some.

Rich renders the epilog with its markup, so no example holds square brackets.
"""

from __future__ import annotations


def _examples(*lines: str) -> str:
    return "Examples:\n\n" + "\n".join(f"  {line}" for line in lines)


EXAMPLES: dict[str, str] = {
    "evaluate": _examples(
        "perfcost evaluate llama3-70b-h100",
        "perfcost evaluate llama3-70b-h100 --set parallelism.micro_batch=2 --baseline",
        "perfcost evaluate gpt3-175b-a100 --json"),
    "solve": _examples(
        "perfcost solve llama3-70b-h100-split --top 3",
        "perfcost solve llama3-70b-codesign --objective cost",
        "perfcost solve serve-llama3-70b-8xh100 --emit vllm",
        "perfcost solve llama3-70b-h100-split --sensitivities --json"),
    "collective": _examples(
        "perfcost collective all_reduce --network dgx-h100 --ranks 8 --bytes '256 MiB'",
        "perfcost collective all_to_all --network dgx-h100 --ranks 64 --sweep 1MiB..1GiB"),
    "validate": _examples(
        "perfcost validate",
        "perfcost validate narayanan2021-table1 --json"),
    "cases": _examples(
        "perfcost cases",
        "perfcost cases --json"),
    "calibrate": _examples(
        "perfcost calibrate my-kernels.json --hardware h100-sxm -o h100-fitted.toml",
        "perfcost calibrate --database h100_sxm -o h100-fitted.toml"),
    "pareto": _examples(
        "perfcost pareto llama3-70b-chiplet-codesign --budgets 6",
        "perfcost pareto llama3-70b-chiplet-codesign --objective cost --json"),
    "compare": _examples(
        "perfcost compare gpt3-175b-a100 --variant \"network.scale_up.bandwidth='600 GB/s'\" "
        "--variant 'parallelism.micro_batch=2;parallelism.tp=4'",
        "perfcost compare serve-llama3-70b-8xh100 serve-llama3-70b-disagg-wins"),
    "cost": _examples(
        "perfcost cost h100-like",
        "perfcost cost h100-like-llama3-70b --json"),
    "chiplet-crossover": _examples(
        "perfcost chiplet-crossover",
        "perfcost chiplet-crossover --nodes n3,n5 --chiplets 2,4,8 --json"),
    "export": _examples(
        "perfcost export gpt3-175b-a100 --format latex -o gpt3.tex",
        "perfcost export gpt3-175b-a100 --format python --quantity iteration_time"),
    "plan": _examples(
        "perfcost plan llm-org-2025",
        "perfcost plan llm-org-2025 --sweep budget=200e6,400e6 --json"),
    "sweep": _examples(
        "perfcost sweep llama3-70b-h100 --vary 'hardware.hbm_bandwidth=2..8:13 TB/s' "
        "--plot hbm.png",
        "perfcost sweep llama3-70b-h100 --vary cluster.gpus=256,512,1024 "
        "--pareto cost,time_to_train --csv front.csv",
        "perfcost sweep serve-llama3-70b-8xh100 --vary serving.rate=1..40:200 --workers 2 "
        "--csv rates.csv"),
}
