"""FLOP floor of one chunk forward pass of a CausalDiT preset: what no implementation can beat.

    python benchmarks/flop_floor.py --preset wan2.1-1.3b --resolution 832x480 --tflops 790

Counts the matrix products of one streaming pass (a chunk of queries against the KV window plus
itself, text cross-attention, FFN) and divides by the device's dense bf16 rate. Prints the floor
per pass, per chunk at a given step count, and the FPS ceiling it implies, and saves them as JSON to
`--out` (default: benchmarks/results/local/flop_floor-<preset>-<resolution>.json, not committed).
"""

import argparse
import json
from pathlib import Path

from streamvideo.engine.model import PRESETS

LOCAL_RESULTS = Path(__file__).parent / "results" / "local"   # runs that should not replace committed results


def pass_flops(cfg, latent_h: int, latent_w: int, window_chunks: int, text_tokens: int) -> dict:
    p_t, p_h, p_w = cfg.patch_size
    queries = (cfg.chunk_frames // p_t) * (latent_h // p_h) * (latent_w // p_w)
    keys = queries * (window_chunks + 1)                       # the cached window plus the chunk itself
    d, layers = cfg.dim, cfg.num_layers
    linear = 2 * queries * layers * (4 * d * d + 2 * d * d + 2 * d * cfg.ffn_dim)   # self qkvo, cross q/o, FFN
    text_kv = 2 * text_tokens * layers * 2 * d * d                                  # cross-attention k, v of the text
    self_attn = 4 * queries * keys * d * layers                                    # QK^T and PV
    cross_attn = 4 * queries * text_tokens * d * layers
    return {"queries": queries, "keys": keys, "linear": linear + text_kv, "self_attention": self_attn,
            "cross_attention": cross_attn, "total": linear + text_kv + self_attn + cross_attn}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="wan2.1-1.3b")
    ap.add_argument("--resolution", default="832x480", help="WIDTHxHEIGHT in pixels (8x spatial codec)")
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--tflops", type=float, default=790.0, help="dense bf16 TFLOP/s of the device (H100: ~790)")
    ap.add_argument("--steps", type=int, default=2, help="denoising passes per steady-state chunk")
    ap.add_argument("--frames-per-chunk", type=int, default=12)
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON (default: benchmarks/results/local/flop_floor-<preset>-<resolution>.json)")
    args = ap.parse_args()
    cfg = PRESETS[args.preset]()
    width, height = (int(v) for v in args.resolution.split("x"))
    f = pass_flops(cfg, height // 8, width // 8, args.window, args.text_tokens)
    pass_ms = f["total"] / (args.tflops * 1e12) * 1e3
    chunk_ms = pass_ms * args.steps
    result = {**f, "pass_floor_ms": pass_ms, "chunk_floor_ms": chunk_ms,
              "fps_ceiling": args.frames_per_chunk / (chunk_ms / 1e3)}
    print(f"{args.preset} at {width}x{height}: {f['queries']} query tokens, {f['keys']} keys per pass")
    for k in ("linear", "self_attention", "cross_attention", "total"):
        print(f"  {k:<16}{f[k] / 1e12:8.2f} TFLOP")
    print(f"floor at {args.tflops:.0f} TFLOP/s: {pass_ms:.1f} ms per pass, "
          f"{chunk_ms:.1f} ms per {args.steps}-step chunk -> at most {result['fps_ceiling']:.0f} FPS "
          f"({args.frames_per_chunk} frames per chunk), before decode")
    out = args.out or LOCAL_RESULTS / f"flop_floor-{args.preset}-{args.resolution}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    out.write_text(json.dumps({"benchmark": "flop_floor", **settings, **result}, indent=2))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
