"""The labs: one-command, reproducible experiments that write plots, data and a manifest.

Run them with ``jaxsample lab NAME``; see :data:`jaxsample.labs.commands.LABS`.
"""

from jaxsample.labs._report import Check, Finding, LabReport, default_out_dir, z_score

__all__ = ["Check", "Finding", "LabReport", "default_out_dir", "z_score"]
