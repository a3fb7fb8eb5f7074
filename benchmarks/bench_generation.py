"""Generation speed on this machine, both paths measured in the same run.

onnxruntime with the key/value cache (what the product runs: the int8 copy, and the float
file beside it) against torch re-running
the whole prefix for every token (what generation costs without a cache). Prints
tokens/s, seconds of music per second of compute, and the ratio.

    python benchmarks/bench_generation.py [--model PATH] [--tokens 256]
"""
import argparse
import json
import os

from emsync.training.evaluate import speed
from emsync.core.generator import MusicGenerator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--tokens", type=int, default=256, help="context length for the uncached torch run")
    args = parser.parse_args()
    report = speed(MusicGenerator(args.model), args.tokens)
    report["cpu_cores"] = os.cpu_count()
    print(json.dumps(report, indent=2))
    for name, figures in report.items():
        if name.startswith("onnxruntime"):
            print(f"{name}: {figures['tokens_per_s']:.0f} tokens/s, {figures['x_real_time']:.1f}x real time")
    if isinstance(report.get("torch_uncached"), dict):
        print(f"torch, no cache:        {report['torch_uncached']['tokens_per_s']:.0f} tokens/s "
              f"-> KV cache speed-up {report['kv_cache_speedup']:.1f}x (aim >= 5x); real-time aim >= 10x")


if __name__ == "__main__":
    main()
