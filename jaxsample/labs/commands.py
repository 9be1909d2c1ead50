"""``jaxsample lab NAME [--out DIR] [--seed S] [--quick] [--model DIR]``: run one lab."""

from __future__ import annotations

import argparse
import importlib
import inspect
from pathlib import Path
from typing import Any

from jaxsample.cli import add_command
from jaxsample.labs._report import default_out_dir

_SUMMARY = "run a lab: plots, JSON and manifest.json; findings and PASS/FAIL checks"
_DESCRIPTION = (
    "Run one lab. Writes PNG plots, JSON data and manifest.json into the output "
    "folder and prints a summary table, one line per finding (a claim of the lab's source "
    "text: 'holds' or 'does not hold', never an error) and one PASS/FAIL line per check of "
    "the software. Exits 0 when every check passes, 1 otherwise, whatever the findings."
)

#: Lab name -> module with ``run(out_dir, seed=..., quick=...) -> LabReport``.
LABS: dict[str, str] = {
    "temperature-sweep": "jaxsample.labs.temperature_sweep",
    "simulator": "jaxsample.labs.simulator",
    "temperature-theory": "jaxsample.labs.temperature_theory",
    "top-k-top-p": "jaxsample.labs.top_k_top_p",
    "diversity-vs-correctness": "jaxsample.labs.diversity",
    "exercises": "jaxsample.labs.exercises",
}


def register(subparsers: Any) -> None:
    """Add the ``lab`` sub-command (see :func:`jaxsample.cli.add_command`)."""
    p = add_command(subparsers, "lab", _run, _SUMMARY, _DESCRIPTION)
    p.add_argument("name", choices=sorted(LABS), help="which lab")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: experiments/<date>-<name>/ here)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the lab's random draws (default 0)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="fewer draws, prompts and training steps, the same checks (what the tests run)",
    )
    p.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="DIR",
        help="model folder (exported or run Mini-GPT, or a local Hugging Face GPT-2 folder) "
        "for the labs that use a model; default: the shipped Mini-GPT. The exercises lab "
        "takes it more than once: the first is the model of 5.3, 5.5 and 5.6, the others "
        "join 5.6's size comparison",
    )


def _run(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else default_out_dir(args.name)
    module = importlib.import_module(LABS[args.name])
    kwargs: dict[str, Any] = {}
    if args.model:
        takes = inspect.signature(module.run).parameters
        if "model" not in takes:
            raise ValueError(f"lab {args.name} uses no model; drop --model")
        if len(args.model) > 1 and "compare" not in takes:
            raise ValueError(f"lab {args.name} takes one --model, got {len(args.model)}")
        from jaxsample.model import load_pretrained

        models = [load_pretrained(folder) for folder in args.model]
        kwargs["model"] = models[0]
        if len(models) > 1:
            kwargs["compare"] = tuple(models[1:])
    report = module.run(out, seed=args.seed, quick=args.quick, **kwargs)
    return 0 if report.passed else 1
