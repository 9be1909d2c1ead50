"""Bytes moved between devices by vocabulary-sharded sampling; sweep work split over devices.

``python -m benchmarks.sharding [--quick] [--out DIR]`` writes ``sharding.json`` and
``sharding.md``:

1. **Bytes per sampling call**, read from the compiled HLO of one call at
   ``[256, 128256]`` float32 logits split over the vocabulary on 8 simulated CPU
   devices (mesh ``dp=1 x tp=8``): the sum of the result sizes of every
   all-gather, all-reduce, all-to-all, reduce-scatter and collective-permute in
   the per-device program. Two programs per strategy: ``jaxsample.sharding.sample``
   (the strategy's reductions as collectives over ``tp``) and XLA's automatic
   partitioning of the unsharded ``jaxsample.sample`` given the same sharded
   logits (``jax.jit`` with ``NamedSharding`` inputs). Collectives inside a loop
   (the top-p rejection rounds) run once per round; they are counted once and
   also reported apart (``in_loops``).
2. **Sweep split**: the same ``jaxsample sweep`` grid on 1, 2, 4 and 8 simulated
   CPU devices (one process each): the per-device rows, the time of a second
   (compiled) run and the SHA-256 of the token arrays, which must agree. On a
   2-core machine the time is no speed figure, only a check that the work splits.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLLECTIVES = ("all-gather", "all-reduce", "all-to-all", "reduce-scatter", "collective-permute")
DTYPE_BYTES = {
    "pred": 1,
    "s8": 1,
    "u8": 1,
    "s16": 2,
    "u16": 2,
    "f16": 2,
    "bf16": 2,
    "s32": 4,
    "u32": 4,
    "f32": 4,
    "s64": 8,
    "u64": 8,
    "f64": 8,
}
FULL_SHAPE = (256, 128256)
QUICK_SHAPE = (16, 1000)
DEVICES = 8

_OP = re.compile(
    r"^\s*(?:ROOT\s+)?%[\w.\-]+\s*=\s*(?P<shape>.+?)\s+"
    r"(?P<op>" + "|".join(COLLECTIVES) + r")(?P<phase>-start|-done)?\("
)
_ARRAY = re.compile(r"\b(?P<dtype>[a-z]+\d*)\[(?P<dims>[\d,]*)\]")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%(?P<name>[\w.\-]+)\s.*\{\s*$")  # not indented
_CALLS = re.compile(
    r"(?:calls|to_apply|body|condition|true_computation|false_computation)=%(?P<one>[\w.\-]+)"
    r"|(?:branch_computations|called_computations)=\{(?P<many>[^}]*)\}"
)
_BODY = re.compile(r"\bwhile\(.*\bbody=%(?P<body>[\w.\-]+)")


def _shape_bytes(shape: str) -> int:
    total = 0
    for m in _ARRAY.finditer(shape):
        dims = [int(d) for d in m["dims"].split(",") if d]
        n = 1
        for d in dims:
            n *= d
        total += n * DTYPE_BYTES.get(m["dtype"], 4)
    return total


def collective_bytes(hlo: str) -> dict[str, Any]:
    """Sum the result bytes of the collectives in a compiled (per-device) HLO module.

    Async pairs are counted once, at their ``-done``. Collectives in a while loop's
    body (or in computations it calls) are also summed apart under ``in_loops``.

    Returns:
        ``{"total": bytes, "in_loops": bytes, "by_op": {op: bytes}, "count": n}``.
    """
    calls: dict[str, set[str]] = {}
    bodies: set[str] = set()
    ops: list[tuple[str, str, int]] = []
    current = ""
    for line in hlo.splitlines():
        head = _COMPUTATION.match(line)
        if head:
            current = head["name"]
            calls.setdefault(current, set())
            continue
        for m in _CALLS.finditer(line):
            names = [m["one"]] if m["one"] else re.findall(r"%([\w.\-]+)", m["many"] or "")
            calls.setdefault(current, set()).update(names)
        body = _BODY.search(line)
        if body:
            bodies.add(body["body"])
        op = _OP.match(line)
        if op and op["phase"] != "-start":
            ops.append((current, op["op"], _shape_bytes(op["shape"])))
    in_loop: set[str] = set()
    todo = list(bodies)
    while todo:
        name = todo.pop()
        if name in in_loop:
            continue
        in_loop.add(name)
        todo.extend(calls.get(name, ()))
    by_op: dict[str, int] = {}
    for _, op_name, size in ops:
        by_op[op_name] = by_op.get(op_name, 0) + size
    return {
        "total": sum(size for _, _, size in ops),
        "in_loops": sum(size for comp, _, size in ops if comp in in_loop),
        "by_op": by_op,
        "count": len(ops),
    }


def _strategies() -> dict[str, Any]:
    import jaxsample as js

    return {
        "greedy": js.Greedy(),
        "temperature": js.Temperature(0.8),
        "top-k 50": js.TopK(50, tau=0.8),
        "top-p 0.9": js.TopP(0.9, tau=0.8),
        "chain T/top-k/top-p": js.chain(js.Temperature(0.8), js.TopK(50), js.TopP(0.9)),
    }


def bytes_suite(shape: tuple[int, int], mesh_shape: tuple[int, int]) -> list[dict[str, Any]]:
    """Compile both programs per strategy and count their collective bytes."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxsample as js
    from jaxsample import sharding

    mesh = jax.make_mesh(mesh_shape, ("dp", "tp"), axis_types=(AxisType.Auto,) * 2)
    split = NamedSharding(mesh, P("dp", "tp"))  # type: ignore[no-untyped-call]
    logits = jax.ShapeDtypeStruct(shape, jnp.float32, sharding=split)  # type: ignore[no-untyped-call]
    key = jax.random.key(0)
    row_bytes = shape[0] * shape[1] * 4
    records = []
    for name, strategy in _strategies().items():

        def xla(k: jax.Array, x: jax.Array, s: Any = strategy) -> jax.Array:
            ids: jax.Array = js.sample(k, x, s)
            return ids

        def ours(k: jax.Array, x: jax.Array, s: Any = strategy) -> jax.Array:
            return sharding.sample(k, x, s, mesh=mesh)

        rec: dict[str, Any] = {"strategy": name, "shape": list(shape), "mesh": list(mesh_shape)}
        for label, fn in (("xla_auto", xla), ("jaxsample", ours)):
            start = time.perf_counter()
            hlo = jax.jit(fn).lower(key, logits).compile().as_text()
            rec[label] = collective_bytes(hlo or "")
            rec[label]["compile_s"] = round(time.perf_counter() - start, 2)
        rec["logits_bytes"] = row_bytes
        rec["ratio"] = rec["jaxsample"]["total"] / max(rec["xla_auto"]["total"], 1)
        records.append(rec)
        print(
            f"bytes {name}: jaxsample {rec['jaxsample']['total']:,} B, XLA automatic "
            f"{rec['xla_auto']['total']:,} B ({100 * rec['ratio']:.3f}%)",
            file=sys.stderr,
            flush=True,
        )
    return records


def _sweep_args(quick: bool) -> list[str]:
    taus = ["0", "0.5", "1", "1.5"] if quick else [f"{t / 4:g}" for t in range(7)] + ["2"]
    seeds = "4" if quick else "16"
    return ["--taus", *taus, "--seeds", seeds, "--max-tokens", "8" if quick else "12"]


def sweep_worker(devices: int, quick: bool) -> dict[str, Any]:
    """Run the sweep twice on ``devices`` CPU devices (this process); time the second."""
    import hashlib

    import jax
    import numpy as np

    jax.config.update("jax_num_cpu_devices", devices)  # type: ignore[no-untyped-call]
    from jaxsample.decoding.sweep import run_sweep, sweep_mesh
    from jaxsample.model import load_pretrained

    args = _sweep_args(quick)
    taus = [float(t) for t in args[1 : args.index("--seeds")]]
    seeds = int(args[args.index("--seeds") + 1])
    max_tokens = int(args[-1])
    model = load_pretrained()  # the shipped model
    tok = model.tokenizer
    prompts = [tok.encode(p, bos=True) for p in ("Tomorrow she", "the dog")]
    mesh = sweep_mesh(len(taus))
    kw: dict[str, Any] = {
        "max_new_tokens": max_tokens,
        "eos_id": tok.eos_id,
        "pad_id": tok.pad_id,
        "bos_id": tok.bos_id,
        "mesh": mesh,
        "chunk_seeds": seeds,
    }
    start = time.perf_counter()
    run_sweep(model.params, model.config, prompts, taus, seeds, **kw)
    first = time.perf_counter() - start
    start = time.perf_counter()
    grid = run_sweep(model.params, model.config, prompts, taus, seeds, **kw)
    second = time.perf_counter() - start
    a, b = int(mesh.shape["tau"]), int(mesh.shape["seed"])
    tokens = hashlib.sha256(
        np.ascontiguousarray(grid.tokens).tobytes() + grid.lengths.tobytes()
    ).hexdigest()
    return {
        "devices": jax.device_count(),
        "mesh": {"tau": a, "seed": b},
        "rows": len(taus) * seeds * len(prompts),
        "rows_per_device": (len(taus) // a) * (-(-seeds // b)) * len(prompts),
        "first_run_s": round(first, 2),
        "second_run_s": round(second, 3),
        "tokens_sha256": tokens,
        "full_sha256": grid.digest(),
    }


def sweep_suite(quick: bool) -> list[dict[str, Any]]:
    """:func:`sweep_worker` in a fresh process for 1, 2, 4 and 8 devices."""
    out = []
    env = dict(os.environ, JAXSAMPLE_CACHE_DIR="off", JAX_PLATFORMS="cpu")
    for n in (1, 2, 4, 8):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.sharding", "--sweep-worker", str(n)]
            + (["--quick"] if quick else []),
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"sweep on {n} devices failed:\n{proc.stderr[-3000:]}")
        rec = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"sweep on {n} devices: {rec['rows_per_device']} rows per device, "
            f"{rec['second_run_s']} s",
            file=sys.stderr,
            flush=True,
        )
        out.append(rec)
    return out


def markdown(results: dict[str, Any]) -> str:
    """The readable tables of a run."""
    lines = [
        f"# Vocabulary-sharded sampling: bytes between devices ({results['created']})",
        "",
        f"Logits float32 {results['shape']} split over the vocabulary on "
        f"{results['devices']} simulated CPU devices (mesh dp x tp = "
        f"{results['mesh'][0]} x {results['mesh'][1]}); one all-gather of the rows is "
        f"{results['all_gather_bytes']:,} B per device. Bytes: result sizes of the "
        "collectives of the compiled per-device program (loop bodies counted once).",
        "",
        "| strategy | jaxsample.sharding (B) | of which in loops | XLA automatic (B) "
        "| jaxsample / XLA | jaxsample / all-gather |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["bytes"]:
        ours, xla = r["jaxsample"], r["xla_auto"]
        of_gather = 100 * ours["total"] / results["all_gather_bytes"]
        lines.append(
            f"| {r['strategy']} | {ours['total']:,} | {ours['in_loops']:,} | {xla['total']:,} "
            f"| {100 * r['ratio']:.3f}% | {of_gather:.3f}% |"
        )
    if results.get("sweep"):
        lines += [
            "",
            "## Sweep split (a check, not a speed figure: simulated devices share 2 cores)",
            "",
            "| devices | mesh tau x seed | rows | rows per device | 2nd run (s) | tokens sha256 |",
            "|---:|---|---:|---:|---:|---|",
        ]
        for r in results["sweep"]:
            lines.append(
                f"| {r['devices']} | {r['mesh']['tau']} x {r['mesh']['seed']} | {r['rows']} "
                f"| {r['rows_per_device']} | {r['second_run_s']} | {r['tokens_sha256'][:16]} |"
            )
        same = len({r["tokens_sha256"] for r in results["sweep"]}) == 1
        lines.append("")
        lines.append(f"Identical tokens on every device count: {'yes' if same else 'NO'}.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with ``--sweep-worker N``, one sweep measurement)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sharding", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"logits {QUICK_SHAPE}, small sweep")
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep split")
    parser.add_argument("--sweep-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sweep_worker is not None:
        print(json.dumps(sweep_worker(args.sweep_worker, args.quick)))
        return 0

    import jax

    jax.config.update("jax_num_cpu_devices", DEVICES)  # type: ignore[no-untyped-call]
    shape = QUICK_SHAPE if args.quick else FULL_SHAPE
    mesh = (1, DEVICES)
    today = _dt.date.today().isoformat()
    results: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "shape": list(shape),
        "devices": DEVICES,
        "mesh": list(mesh),
        "all_gather_bytes": shape[0] * shape[1] * 4,
        "jax": jax.__version__,
        "bytes": bytes_suite(shape, mesh),
    }
    if not args.no_sweep:
        results["sweep"] = sweep_suite(args.quick)
    out = args.out or Path(__file__).parent / "results" / f"sharding-cpu-{today}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sharding.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (out / "sharding.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
