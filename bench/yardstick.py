"""Paired CPU ratios read against the load generator's own CPU, from a committed run.

The generator does the same work for every client at a given N (the same frames out, the
same pull answers and commands in), so its CPU per call-second moves only with the
machine: other work on the host, frequency. Dividing each agent's CPU by the generator's
in the same measured window takes that drift out of a ratio; the raw paired ratios are in
``calls.md``. This prints both, per repetition, for the pairs the targets name.

    python bench/yardstick.py                       # bench/results/calls.json, N = 50
    python bench/yardstick.py --results other.json --n 100
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAIRS = (("ours-websockets", "official"), ("ours", "official"), ("ours", "floor"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=HERE / "results" / "calls.json")
    p.add_argument("--n", type=int, default=50)
    args = p.parse_args()
    points = json.loads(args.results.read_text())["echo"]["points"]
    runs: dict[tuple[str, int], tuple[float, float]] = {
        (x["client"], x["rep"]): (x["cpuMsPerCallSecond"], x["serverCpuMsPerCallSecond"])
        for x in points
        if x["n"] == args.n
    }
    reps = sorted({rep for _, rep in runs})
    print(f"N = {args.n}, {len(reps)} repetition(s); agent ms per call-second / generator's")
    for ours, ref in PAIRS:
        raw: list[float] = []
        scaled: list[float] = []
        for rep in reps:
            if (ours, rep) not in runs or (ref, rep) not in runs:
                continue
            (a, ga), (b, gb) = runs[ours, rep], runs[ref, rep]
            raw.append(a / b)
            scaled.append((a / ga) / (b / gb))
        if not raw:
            continue
        print(
            f"{ours}/{ref}: raw {statistics.median(raw):.2f} "
            f"({min(raw):.2f}-{max(raw):.2f}), against the generator "
            f"{statistics.median(scaled):.2f} ({min(scaled):.2f}-{max(scaled):.2f})"
        )


if __name__ == "__main__":
    main()
