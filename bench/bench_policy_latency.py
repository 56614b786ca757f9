"""Forward-pass latency of the built-in policy at batch 1 on this CPU (target: p99 <= 10 ms, default config).

Measures every head/fusion variant with freshly initialised weights (latency does
not depend on the weights), the shipped checkpoint when present, and INT8 dynamic
quantisation of the default config, and the shipped policy's time per stage
(preprocess, model, postprocess). Usage: bench_policy_latency.py [--repeats N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from benchlib import percentiles, save

from vla_ros import arm
from vla_ros.policies.builtin.config import CONFIGS
from vla_ros.policies.builtin.language import LanguageEncoder
from vla_ros.policies.builtin.model import VLAModel
from vla_ros.policies.builtin.policy import SHIPPED_CHECKPOINT, BuiltinPolicy, Normalization

INSTRUCTION = "pick up the red cube"


def _untrained_policy(config, language) -> BuiltinPolicy:
    k = config.chunk_size
    normalization = Normalization(np.zeros(8, np.float32), np.ones(8, np.float32), np.zeros((k, 8), np.float32),
                                  np.ones((k, 8), np.float32))
    torch.manual_seed(0)
    return BuiltinPolicy(config, VLAModel(config), normalization, language=language)


def time_policy(policy: BuiltinPolicy, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (policy.config.image_size, policy.config.image_size, 3), dtype=np.uint8)
    state = arm.home_vector()
    wrist = image if policy.uses_wrist_camera else None
    policy.predict_chunk(image, state, INSTRUCTION, wrist_image=wrist)  # language encoding is cached after the first call
    for _ in range(20):
        policy.predict_chunk(image, state, INSTRUCTION, wrist_image=wrist)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        policy.predict_chunk(image, state, INSTRUCTION, wrist_image=wrist)
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


@torch.inference_mode()
def time_stages(policy: BuiltinPolicy, repeats: int) -> dict:
    """predict_chunk split in its three stages: preprocess (image, state, cached tokens), model, postprocess."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (policy.config.image_size, policy.config.image_size, 3), dtype=np.uint8)
    state = arm.home_vector()
    samples = {"preprocess": [], "model": [], "postprocess": []}
    for i in range(repeats + 20):
        t0 = time.perf_counter()
        inputs = policy.preprocess(image, state, INSTRUCTION, image if policy.uses_wrist_camera else None)
        t1 = time.perf_counter()
        offsets = policy.model.predict(**inputs)[0].numpy()
        t2 = time.perf_counter()
        policy.postprocess(state, offsets)
        t3 = time.perf_counter()
        if i >= 20:  # warm-up: the first calls encode the instruction and fill caches
            for name, seconds in zip(samples, (t1 - t0, t2 - t1, t3 - t2)):
                samples[name].append(seconds)
    return {name: percentiles(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(2)
    language = LanguageEncoder(CONFIGS["default"].max_tokens)
    results = {"threads": torch.get_num_threads(), "repeats": args.repeats, "variants": {}}
    for name in ("default", "tokens", "flow", "cross_attention", "concat"):
        policy = _untrained_policy(CONFIGS[name], language)
        params = sum(p.numel() for p in policy.model.parameters())
        results["variants"][name] = {"latency_ms": time_policy(policy, args.repeats), "parameters": params}
        print(f"{name:16s} p50 {results['variants'][name]['latency_ms']['p50']:.2f} ms  "
              f"p99 {results['variants'][name]['latency_ms']['p99']:.2f} ms  params {params}")
    results["variants"]["default_int8"] = {
        "latency_ms": time_policy(_untrained_policy(CONFIGS["default"], language).int8(), args.repeats)}
    if SHIPPED_CHECKPOINT.is_file():
        shipped = BuiltinPolicy.load(SHIPPED_CHECKPOINT, language=language)
        results["variants"]["shipped"] = {"latency_ms": time_policy(shipped, args.repeats),
                                          "config": shipped.config.to_dict()}
        results["variants"]["shipped_int8"] = {"latency_ms": time_policy(shipped.int8(), args.repeats)}
        results["shipped_stages_ms"] = time_stages(shipped, args.repeats)
        print("shipped stages p50: " + ", ".join(f"{k} {v['p50']:.2f} ms" for k, v in results["shipped_stages_ms"].items()))
    for name in ("default_int8", "shipped", "shipped_int8"):
        if name in results["variants"]:
            latency = results["variants"][name]["latency_ms"]
            print(f"{name:16s} p50 {latency['p50']:.2f} ms  p99 {latency['p99']:.2f} ms")
    default_p99 = results["variants"]["default"]["latency_ms"]["p99"]
    results["target"] = {"metric": "default p99 ms", "limit": 10.0, "value": default_p99, "met": default_p99 <= 10.0}
    save("policy_latency", results)


if __name__ == "__main__":
    main()
