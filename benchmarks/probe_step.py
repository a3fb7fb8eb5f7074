"""What one generator step costs on this CPU, by rows in the batch and intra-op threads, and
what the sampler's Python costs beside it: the figures behind the model card's verdict on
batching regeneration's takes.

For threads 1 and 2 (interleaved, `--rounds` times): the shipped runtime copy's mean step for
1 and 3 rows, the cache growing from 200 tokens (`probe_generator.step_ms`, `--steps` steps).
Then one 30 s generation under cProfile: onnxruntime's share and the Python around it, per
token.

    python benchmarks/probe_step.py [--rounds 2] [--steps 300]
"""
import argparse
import cProfile
import json
import pstats

from emsync.core.conditions import EmotionCurve
from emsync.core.generator import MusicGenerator
from machine import cpu_line
from probe_generator import step_ms


def sampler_ms(generator: MusicGenerator) -> dict:
    """ms a token in onnxruntime and in everything else, over a 30 s generation under cProfile."""
    profile = cProfile.Profile()
    profile.enable()
    run = generator.generate(30.0, [10.0, 20.0], EmotionCurve.constant(0.3, 0.7), seed=0)
    profile.disable()
    stats = pstats.Stats(profile).stats
    total = sum(entry[2] for entry in stats.values())   # tottime of every function
    runtime = sum(entry[2] for key, entry in stats.items() if "run_with_iobinding" in key[2])
    tokens = run.stats["tokens"]
    return {"tokens": tokens, "onnxruntime_ms_a_token": round(runtime / tokens * 1000, 3),
            "python_ms_a_token_under_cprofile": round((total - runtime) / tokens * 1000, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    generators = {threads: MusicGenerator(threads=threads) for threads in (1, 2)}
    for generator in generators.values():
        step_ms(generator, 1, repeat=20)   # warm
    timings: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for threads, generator in generators.items():
            for rows in (1, 3):
                timings.setdefault(f"{threads}_threads_{rows}_rows", []).append(step_ms(generator, rows, repeat=args.steps))
    report = {"cpu": cpu_line(), "ms_a_step_with_200_cached": timings, "sampler": sampler_ms(generators[1])}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
