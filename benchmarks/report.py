"""Writing results: JSON, a markdown table and a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.suites import MAX_BUFFERS

PEERS = ("numpy", "naive_jax", "hf")


Case = tuple[int, int, str, float | None, str]
"""A sampler-table case: ``(B, V, sampler, tau, logits)``."""


def _case(rec: dict[str, Any]) -> Case:
    """The case of a sampler record (records of runs before the logit families: LLM-like)."""
    tau = rec.get("tau")
    return (rec["batch"], rec["vocab"], rec["sampler"], tau, rec.get("logits", "llm-like"))


def _index(records: list[dict[str, Any]]) -> dict[tuple[Case, str], dict[str, Any]]:
    return {(_case(r), r["impl"]): r for r in records}


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
    lines = [
        f"## Decode ({dec['model']}, {dec['n_seeds']} seeds, {dec['strategy']})",
        "",
        f"{dec['note']}.",
        "",
        "Tokens per second (all rows together; median of the timed calls after one "
        "warm-up, repetitions in parentheses):",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
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

    The CPU sampler targets are read at [32, 50257] (tau 0.8 and the LLM-like logits
    unless named), the compile ones from the first-compile table, and the GPU ones
    at [128, 131072] when the run measured device time there. Every ratio is of two
    figures from the same run.
    """
    idx = _index(results.get("samplers", []))

    def ms(sampler: str, impl: str, tau: float = 0.8, logits: str = "llm-like") -> float | None:
        return _ms(idx.get(((32, 50257, sampler, tau, logits), impl)))

    out: list[dict[str, Any]] = []

    def add(name: str, num: float | None, den: float | None, bound: float, at_least: bool) -> None:
        if num is None or den is None:
            out.append({"target": name, "measured": None, "met": None})
            return
        ratio = num / den
        met = ratio >= bound if at_least else ratio <= bound
        out.append({"target": name, "measured": ratio, "bound": bound, "met": met})

    for logits in ("llm-like", "gaussian"):
        for tau in (0.8, 1.5):
            top_p = ms("top-p", "jaxsample", tau, logits)
            where = f"top-p 0.9, tau {tau}, {logits} [32, 50257]"
            add(
                f"{where}: jaxsample / floor <= 10",
                top_p,
                ms("top-p", "floor", tau, logits),
                10,
                False,
            )
            add(
                f"{where}: NumPy peer / jaxsample >= 5",
                ms("top-p", "numpy", tau, logits),
                top_p,
                5,
                True,
            )
    add(
        "temperature 0.8 [32, 50257]: jaxsample / floor <= 4",
        ms("temperature", "jaxsample"),
        ms("temperature", "floor"),
        4,
        False,
    )
    add(
        "top-k 50, tau 0.8 [32, 50257]: jaxsample / floor <= 6",
        ms("top-k", "jaxsample"),
        ms("top-k", "floor"),
        6,
        False,
    )
    comp = results.get("compile")
    if comp:
        cat = comp["categorical"]["compile_s"]
        for r in comp["samplers"]:
            add(
                f"first compile of {r['sampler']} [{comp['batch']}, {comp['vocab']}]: "
                "jaxsample / jax.random.categorical <= 5",
                r["compile_s"],
                cat,
                5,
                False,
            )
    gpu = idx.get(((128, 131072, "top-p", 0.8, "llm-like"), "jaxsample"), {})
    if gpu.get("device_ms") is not None:
        naive = idx.get(((128, 131072, "top-p", 0.8, "llm-like"), "naive_jax"), {})
        out.append(
            {
                "target": "top-p [128, 131072]: device time <= 0.139 ms (FlashInfer's H100 figure)",
                "measured": gpu["device_ms"],
                "bound": 0.139,
                "met": gpu["device_ms"] <= 0.139,
            }
        )
        add(
            "top-p [128, 131072]: naive JAX / jaxsample, device time >= 10",
            naive.get("device_ms"),
            gpu["device_ms"],
            10,
            True,
        )
    for suite, target, bound in (
        ("sweep", "temperature sweep: NumPy loop / one vmapped call (`entropy_sweep`) >= 5", 5),
        ("seeds", "100 seeds: NumPy loop / one call >= 20", 20),
    ):
        loop_vs_vmap = results.get(suite)
        if loop_vs_vmap:
            add(
                target,
                loop_vs_vmap["numpy_loop"]["median_ms"],
                loop_vs_vmap["jaxsample_vmap"]["median_ms"],
                bound,
                True,
            )
    dec = results.get("decode")
    if dec:
        add(
            "decode 64 tokens: python loop with recompute / scan KV cache >= 20",
            _tokens_per_s(dec, 64, "scan_kv_cache"),
            _tokens_per_s(dec, 64, "python_loop_recompute"),
            20,
            True,
        )
    return out


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _buffers(results: dict[str, Any]) -> str:
    """How many buffers the sampler table rotated, per shape, and the cache they were to exceed."""
    recs = [r for r in results.get("samplers", []) if "buffers" in r]
    if not recs:
        return "buffers per shape not recorded"
    per_shape = {(r["batch"], r["vocab"]): r["buffers"] for r in recs}
    shapes = ", ".join(f"{n} at [{b}, {v}]" for (b, v), n in per_shape.items())
    cache = recs[0].get("cache_bytes")
    if not cache:
        return f"buffers: {shapes}"
    return (
        f"buffers: {shapes}; enough to hold twice {cache / 2**20:.0f} MiB of cache, "
        f"at most {MAX_BUFFERS}"
    )


def _windows(results: dict[str, Any]) -> str:
    """How the sampler table's windows were combined, for the report's header."""
    counts = {len(r.get("window_median_ms", [0])) for r in results.get("samplers", [])}
    n = max(counts, default=1)
    if n <= 1:
        return ""
    return (
        f"; the whole table was timed {n} times in turn, each time with a {n}th of the "
        "budget, and each figure is the median of its windows' medians (a few seconds of "
        "a slow host then move one window, not the figure)"
    )


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
        "- figures: median latency per call including dispatch (ms), inputs rotated "
        f"({_buffers(results)}); "
        "ratios are from the same run, every implementation of a case timed in turn (each "
        "round: one call of each slow peer, a burst of jaxsample and floor calls)"
        f"{_windows(results)}. "
        "`x floor` = jaxsample / one jitted row-max read; "
        "`peer / js` = how many times slower the peer is than jaxsample.",
        "",
    ]
    recs = results.get("samplers", [])
    if recs:
        idx = _index(recs)
        has_dev = any("device_ms" in r for r in recs)
        head = (
            "| B | V | sampler | tau | logits | kept | jaxsample | floor | x floor | numpy "
            "| numpy / js | naive JAX | naive / js | HF | HF / js |"
        )
        if has_dev:
            head += " js device | naive device | floor device |"
        lines += [head, "|" + " --- |" * (head.count("|") - 1)]
        # Shapes by V then B; within a shape, the cases in the order they ran.
        cases = sorted(dict.fromkeys(_case(r) for r in recs), key=lambda c: (c[1], c[0]))
        kept = {_case(r): r.get("kept") for r in recs}
        for case in cases:
            b, v, s, tau, logits = case
            js_ms = _ms(idx.get((case, "jaxsample")))
            floor = _ms(idx.get((case, "floor")))
            k = kept.get(case)
            row = [
                str(b),
                str(v),
                s,
                "-" if tau is None else f"{tau:g}",
                logits,
                "-" if k is None else f"{k:.0f}",
                _fmt(js_ms, 3),
                _fmt(floor, 3),
                _fmt(js_ms / floor if js_ms and floor else None, 1),
            ]
            for peer in PEERS:
                p = _ms(idx.get((case, peer)))
                row += [_fmt(p, 2), _fmt(p / js_ms if p and js_ms else None, 1)]
            if has_dev:
                jd = idx.get((case, "jaxsample"), {}).get("device_ms")
                nd = idx.get((case, "naive_jax"), {}).get("device_ms")
                fd = idx.get((case, "floor"), {}).get("device_ms")
                row += [_fmt(jd, 3), _fmt(nd, 3), _fmt(fd, 3)]
            lines.append("| " + " | ".join(row) + " |")
        skipped = {r["skipped"] for r in recs if "skipped" in r}
        for note in skipped:
            lines.append(f"\nHF peer skipped: {note}")
        lines.append("")
    comp = results.get("compile")
    if comp:
        cat = comp["categorical"]["compile_s"]
        lines += [
            f"## First compile ([{comp['batch']}, {comp['vocab']}] {comp['dtype']})",
            "",
            f"{comp['method']}; median of {comp['rounds']} round(s), each function once "
            "per round. Ratio: over `jax.random.categorical(key, x)` in the same process.",
            "",
            "| function | compile (s) | x categorical |",
            "| --- | --- | --- |",
            f"| `jax.random.categorical` | {cat:.2f} | 1.0 |",
        ]
        for r in comp["samplers"]:
            lines.append(
                f"| jaxsample {r['sampler']}: `{r['strategy']}` | "
                f"{r['compile_s']:.2f} | {r['x_categorical']:.1f} |"
            )
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
            f"| `js.entropy_sweep`: 64 temperatures per round, two sums folded over the row | "
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
        lines += [
            "## Checks",
            "",
            f"- {len(checks['records'])} checks, {len(checks['failures'])} failures",
        ]
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
    fig, axes = plt.subplots(n, 1, figsize=(12, 3.4 * max(n, 1)), squeeze=False)
    impls = ["jaxsample", "floor", "numpy", "naive_jax", "hf"]
    for ax, (b, v) in zip(axes[:, 0], shapes, strict=False):
        cases = [c for c in dict.fromkeys(_case(r) for r in recs) if c[:2] == (b, v)]
        idx = _index(recs)
        width = 0.8 / len(impls)
        for j, impl in enumerate(impls):
            ys = [_ms(idx.get((c, impl))) for c in cases]
            ax.bar(
                [i + j * width for i in range(len(cases))],
                [float("nan") if y is None else y for y in ys],
                width,
                label=impl,
            )
        ax.set_yscale("log")
        labels = [s if t is None else f"{s}\n{t:g} {lg}" for _, _, s, t, lg in cases]
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cases))], labels, fontsize=6)
        ax.set_ylabel("ms per call")
        ax.set_title(f"B = {b}, V = {v}")
        ax.legend(fontsize=7, ncol=5)
    if dec:
        ax = axes[-1, 0]
        for method in dict.fromkeys(r["method"] for r in dec["results"]):
            pts = [
                (r["new_tokens"], r["tokens_per_s"])
                for r in dec["results"]
                if r["method"] == method and "tokens_per_s" in r
            ]
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                label=DECODE_LABELS.get(method, method),
            )
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
