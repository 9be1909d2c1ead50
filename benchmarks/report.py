"""Writing results: JSON, a markdown table and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PEERS = ("numpy", "naive_jax", "hf")


def _index(records: list[dict[str, Any]]) -> dict[tuple[int, int, str, str], dict[str, Any]]:
    return {(r["batch"], r["vocab"], r["sampler"], r["impl"]): r for r in records}


def _ms(rec: dict[str, Any] | None) -> float | None:
    if rec is None or "median_ms" not in rec:
        return None
    return float(rec["median_ms"])


DECODE_LABELS = {
    "scan_kv_cache": "scan, KV cache",
    "scan_recompute": "scan, recompute",
    "python_loop_cached_step": "Python loop, cached step",
    "python_loop_recompute": "Python loop, recompute",
}
"""Column titles of the decode methods (unknown methods show their JSON name)."""


def _tokens_per_s(dec: dict[str, Any], n: int, method: str) -> float | None:
    """Tokens per second of one decode method at ``n`` new tokens, if measured."""
    for r in dec.get("results", []):
        if r["new_tokens"] == n and r["method"] == method and "tokens_per_s" in r:
            return float(r["tokens_per_s"])
    return None


def _decode_markdown(dec: dict[str, Any]) -> list[str]:
    """The decode section: tokens per second per length (rows) and method (columns)."""
    recs = dec["results"]
    methods = list(dict.fromkeys(r["method"] for r in recs))
    lengths = sorted({r["new_tokens"] for r in recs})
    head = ["new tokens", *(DECODE_LABELS.get(m, m) for m in methods)]
    ratio = {"scan_kv_cache", "python_loop_recompute"} <= set(methods)
    if ratio:
        head.append("KV scan / Python recompute")
    lines = [f"## Decode ({dec['model']}, {dec['n_seeds']} seeds, {dec['strategy']})", "",
             f"{dec['note']}.", "",
             "Tokens per second (all rows together; median of the timed calls after one "
             "warm-up, repetitions in parentheses):", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    by_key = {(r["new_tokens"], r["method"]): r for r in recs}
    for n in lengths:
        row = [str(n)]
        for m in methods:
            r = by_key.get((n, m))
            if r is None or "tokens_per_s" not in r:
                row.append("skipped" if r is not None else "-")
            else:
                row.append(f"{r['tokens_per_s']:.0f} ({r['reps']})")
        if ratio:
            kv = _tokens_per_s(dec, n, "scan_kv_cache")
            naive = _tokens_per_s(dec, n, "python_loop_recompute")
            row.append(_fmt(kv / naive if kv and naive else None, 1))
        lines.append("| " + " | ".join(row) + " |")
    skipped = [r for r in recs if "skipped" in r]
    lines.append("")
    for r in skipped:
        lines.append(f"- skipped {r['method']} at {r['new_tokens']} tokens: {r['skipped']}")
    growth = {m: v for m, v in (dec.get("growth_exponent") or {}).items() if v is not None}
    if growth:
        parts = [f"{DECODE_LABELS.get(m, m)} n^{v:.2f}" for m, v in growth.items()]
        lines.append("- time per call grows as " + ", ".join(parts))
    if skipped or growth:
        lines.append("")
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance targets, each with its measured value or ratio.

    The CPU targets are read at [32, 50257]; the GPU ones at [128, 131072], when
    the run measured device time there.
    """
    idx = _index(results.get("samplers", []))

    def ms(sampler: str, impl: str) -> float | None:
        return _ms(idx.get((32, 50257, sampler, impl)))

    out: list[dict[str, Any]] = []

    def add(name: str, num: float | None, den: float | None, bound: float, at_least: bool) -> None:
        if num is None or den is None:
            out.append({"target": name, "measured": None, "met": None})
            return
        ratio = num / den
        met = ratio >= bound if at_least else ratio <= bound
        out.append({"target": name, "measured": ratio, "bound": bound, "met": met})

    top_p = ms("top-p", "jaxsample")
    add("top-p [32, 50257]: NumPy peer / jaxsample >= 10", ms("top-p", "numpy"), top_p, 10, True)
    add("top-p [32, 50257]: HF peer / jaxsample >= 30", ms("top-p", "hf"), top_p, 30, True)
    add("top-p [32, 50257]: jaxsample / floor <= 6", top_p, ms("top-p", "floor"), 6, False)
    add(
        "temperature [32, 50257]: jaxsample / floor <= 4",
        ms("temperature", "jaxsample"),
        ms("temperature", "floor"),
        4,
        False,
    )
    gpu = idx.get((128, 131072, "top-p", "jaxsample"), {})
    if gpu.get("device_ms") is not None:
        naive = idx.get((128, 131072, "top-p", "naive_jax"), {})
        out.append({
            "target": "top-p [128, 131072]: device time <= 0.139 ms (FlashInfer's H100 figure)",
            "measured": gpu["device_ms"], "bound": 0.139, "met": gpu["device_ms"] <= 0.139,
        })
        add("top-p [128, 131072]: naive JAX / jaxsample, device time >= 10",
            naive.get("device_ms"), gpu["device_ms"], 10, True)
    sweep = results.get("sweep")
    if sweep:
        add("temperature sweep: NumPy loop / one vmapped call (`entropy_sweep`) >= 5",
            sweep["numpy_loop"]["median_ms"], sweep["jaxsample_vmap"]["median_ms"], 5, True)
    seeds = results.get("seeds")
    if seeds:
        add("100 seeds: NumPy loop / one call >= 20",
            seeds["numpy_loop"]["median_ms"], seeds["jaxsample_vmap"]["median_ms"], 20, True)
    dec = results.get("decode")
    if dec:
        add("decode 64 tokens: python loop with recompute / scan KV cache >= 20",
            _tokens_per_s(dec, 64, "scan_kv_cache"),
            _tokens_per_s(dec, 64, "python_loop_recompute"), 20, True)
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    """A readable summary: machine, sampler table with ratios, other suites, targets."""
    m = results["machine"]
    lines = [
        f"# jaxsample benchmarks ({results['mode']})",
        "",
        f"- machine: {m['cpu_model']}, {m['cpu_cores_usable']} usable cores; "
        f"jax {m['versions']['jax']} on {m['jax_backend']} ({m['jax_device_kind']})",
        f"- date: {results['date']}",
        f"- inputs: {results['logits']}",
        "- figures: median latency per call including dispatch (ms), inputs rotated; "
        "ratios are from the same run, every implementation of a case timed in turn (each "
        "round: one call of each slow peer, a burst of jaxsample and floor calls). "
        "`x floor` = jaxsample / one jitted row-max read; "
        "`peer / js` = how many times slower the peer is than jaxsample.",
        "",
    ]
    recs = results.get("samplers", [])
    if recs:
        idx = _index(recs)
        has_dev = any("device_ms" in r for r in recs)
        head = ("| B | V | sampler | jaxsample | floor | x floor | numpy | numpy / js "
                "| naive JAX | naive / js | HF | HF / js |")
        if has_dev:
            head += " js device | naive device | floor device |"
        lines += [head, "|" + " --- |" * (head.count("|") - 1)]
        keys = sorted({(r["batch"], r["vocab"], r["sampler"]) for r in recs},
                      key=lambda k: (k[1], k[0]))
        order = ["greedy", "temperature", "top-k", "top-p", "chain", "top-p (flat)"]
        keys.sort(key=lambda k: (k[1], k[0], order.index(k[2]) if k[2] in order else 99))
        for b, v, s in keys:
            js_ms = _ms(idx.get((b, v, s, "jaxsample")))
            floor = _ms(idx.get((b, v, s, "floor")))
            row = [str(b), str(v), s, _fmt(js_ms, 3), _fmt(floor, 3),
                   _fmt(js_ms / floor if js_ms and floor else None, 1)]
            for peer in PEERS:
                p = _ms(idx.get((b, v, s, peer)))
                row += [_fmt(p, 2), _fmt(p / js_ms if p and js_ms else None, 1)]
            if has_dev:
                jd = idx.get((b, v, s, "jaxsample"), {}).get("device_ms")
                nd = idx.get((b, v, s, "naive_jax"), {}).get("device_ms")
                fd = idx.get((b, v, s, "floor"), {}).get("device_ms")
                row += [_fmt(jd, 3), _fmt(nd, 3), _fmt(fd, 3)]
            lines.append("| " + " | ".join(row) + " |")
        skipped = {r["skipped"] for r in recs if "skipped" in r}
        for note in skipped:
            lines.append(f"\nHF peer skipped: {note}")
        lines.append("")
    sweep = results.get("sweep")
    if sweep:
        lines += [
            f"## Temperature sweep ({sweep['n_temperatures']} temperatures, V = {sweep['vocab']})",
            "",
            f"NumPy loop: {sweep['numpy_loop']['median_ms']:.2f} ms. One jitted call each "
            f"(entropies agree with the loop to {sweep['max_abs_entropy_diff_bits']:.1e} bits):",
            "",
            "| method | ms | NumPy loop / method |",
            "|---|---|---|",
            f"| the lab's `entropy_sweep`: vmapped, entropy from two fused sums | "
            f"{sweep['jaxsample_vmap']['median_ms']:.2f} | {sweep['speedup']:.1f}x |",
            f"| `vmap` of `entropy(probs(z, Temperature(t)))` | "
            f"{sweep['jaxsample_plain_vmap']['median_ms']:.2f} | {sweep['speedup_plain']:.1f}x |",
            f"| the same, vmapped over groups of 16 (`lax.map`, `batch_size=16`) | "
            f"{sweep['jaxsample_grouped_16']['median_ms']:.2f} | {sweep['speedup_grouped']:.1f}x |",
            "",
        ]
    seeds = results.get("seeds")
    if seeds:
        lines += [
            f"## {seeds['n_seeds']} seeds from one distribution (V = {seeds['vocab']}, "
            f"{seeds['strategy']})",
            "",
            f"- one vmapped call: {seeds['jaxsample_vmap']['median_ms']:.3f} ms; "
            f"{seeds['n_seeds']} `rng.choice` calls: {seeds['numpy_loop']['median_ms']:.2f} ms; "
            f"speed-up {seeds['speedup']:.1f}x",
            "",
        ]
    dec = results.get("decode")
    if dec:
        lines += _decode_markdown(dec)
    tg = results.get("targets")
    if tg:
        lines += ["## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
        for t in tg:
            met = "n/a" if t["met"] is None else ("yes" if t["met"] else "no")
            value = t["measured"]
            digits = 3 if value is not None and abs(value) < 1 else 1
            lines.append(f"| {t['target']} | {_fmt(value, digits)} | {met} |")
        lines.append("")
    checks = results.get("checks")
    if checks is not None:
        lines += ["## Checks", "", f"- {len(checks['records'])} checks, "
                  f"{len(checks['failures'])} failures"]
        lines += [f"  - {f}" for f in checks["failures"]]
        lines.append("")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Bar chart of latency per sampler and implementation (log scale), plus decode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [r for r in results.get("samplers", []) if "median_ms" in r]
    shapes = sorted({(r["batch"], r["vocab"]) for r in recs}, key=lambda s: (s[1], s[0]))
    dec = results.get("decode")
    n = len(shapes) + (1 if dec else 0)
    fig, axes = plt.subplots(n, 1, figsize=(10, 3.2 * max(n, 1)), squeeze=False)
    impls = ["jaxsample", "floor", "numpy", "naive_jax", "hf"]
    for ax, (b, v) in zip(axes[:, 0], shapes, strict=False):
        samplers = list(dict.fromkeys(r["sampler"] for r in recs))
        width = 0.8 / len(impls)
        for j, impl in enumerate(impls):
            ys = []
            for s in samplers:
                hit = [r for r in recs if (r["batch"], r["vocab"], r["sampler"], r["impl"])
                       == (b, v, s, impl)]
                ys.append(hit[0]["median_ms"] if hit else float("nan"))
            ax.bar([i + j * width for i in range(len(samplers))], ys, width, label=impl)
        ax.set_yscale("log")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(samplers))], samplers)
        ax.set_ylabel("ms per call")
        ax.set_title(f"B = {b}, V = {v}")
        ax.legend(fontsize=7, ncol=5)
    if dec:
        ax = axes[-1, 0]
        for method in dict.fromkeys(r["method"] for r in dec["results"]):
            pts = [(r["new_tokens"], r["tokens_per_s"]) for r in dec["results"]
                   if r["method"] == method and "tokens_per_s" in r]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                    label=DECODE_LABELS.get(method, method))
        ax.set_xlabel("new tokens")
        ax.set_ylabel("tokens / s")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"decode, {dec['n_seeds']} seeds")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], out: Path) -> None:
    """Write ``results.json``, ``results.md`` and ``results.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(results) + "\n")
    plot(results, out / "results.png")
