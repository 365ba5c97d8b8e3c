#!/usr/bin/env python3
"""Fuzz sroamd's receive paths, in-process, on the real code (tests/fuzzing/).

  python3 bench/fuzz.py --path flood --count 1000000
  python3 bench/fuzz.py --path all --count 20000 --seed 7
  python3 bench/fuzz.py --replay fuzz-failures/flood-....json

Paths: flood (TCP stream -> sessions -> store -> roaming -> client service),
dhcp, rs, ubus (frames -> ubus client -> hostapd station source), hostapd
(control-socket events and STA replies -> station source).  Every failing
input is counted by kind and the first few of each kind are saved as JSON
reproducers in --save (default fuzz-failures/); the run never stops on one.
Prints progress to stderr and one JSON object on its last stdout line.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, ".."))

from fuzzing import runner  # noqa: E402
from fuzzing.registry import PATHS  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--path", default="all", choices=["all", *PATHS])
    parser.add_argument("--count", type=int, default=10000, help="inputs per path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epoch", type=int, default=20000,
                        help="inputs before the harness state is rebuilt")
    parser.add_argument("--save", default="fuzz-failures", help="directory for reproducers")
    parser.add_argument("--max-seconds", type=float, default=None, help="per path")
    parser.add_argument("--replay", metavar="FILE", help="re-run a saved reproducer")
    args = parser.parse_args()

    if args.replay:
        with open(args.replay) as f:
            failure = json.load(f)
        cls = PATHS[failure["path"]]
        found = runner.replay(cls, failure["seed"], failure["epoch"], failure["index"])
        alone = runner.replay_input(cls, failure["input"], failure["seed"])
        for kind, detail in found:
            print(f"replayed: {kind}\n{detail}\n", file=sys.stderr)
        print(json.dumps({"kind": failure["kind"],
                          "replayed": [k for k, _ in found],
                          "alone": [k for k, _ in alone]}))
        return 0 if not found else 1

    names = list(PATHS) if args.path == "all" else [args.path]
    summary = {"seed": args.seed, "paths": {}}
    total = 0
    for name in names:
        print(f"fuzzing {name}: {args.count} inputs, seed {args.seed}", file=sys.stderr)
        result = runner.run(PATHS[name], args.count, seed=args.seed, epoch_len=args.epoch,
                            save_dir=args.save,
                            progress=lambda text: print(text, file=sys.stderr, flush=True),
                            max_seconds=args.max_seconds)
        summary["paths"][name] = result.summary()
        total += sum(result.failures.values())
        print(f"{name}: {json.dumps(result.summary())}", file=sys.stderr)
    summary["failures"] = total
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
