"""Training and checkpointing of the Mini-GPT.

* :func:`train` trains or exactly resumes a run in a folder (AdamW with warm-up and
  cosine decay; orbax checkpoints that survive ``SIGKILL``), configured by
  :class:`TrainConfig`;
* :func:`restore_checkpoint` reads and verifies a run's checkpoint;
* :func:`export_pretrained` writes a finished run as a model folder, which
  :func:`jaxsample.model.load_pretrained` loads;
* :func:`params_sha256` fingerprints a parameter pytree.

The modules hold one concern each: ``config``, ``data`` (corpus and batch order),
``steps`` (optimiser and compiled steps), ``loop`` (:func:`train`), ``checkpoint``
(the orbax folder), ``restore``, ``export`` and ``curve`` (the loss curve).
"""

from jaxsample.model.params import CheckpointError, params_sha256
from jaxsample.training.config import TrainConfig
from jaxsample.training.export import export_pretrained
from jaxsample.training.loop import TrainResult, train
from jaxsample.training.restore import EvalPoint, TrainState, restore_checkpoint

__all__ = [
    "CheckpointError",
    "EvalPoint",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "export_pretrained",
    "params_sha256",
    "restore_checkpoint",
    "train",
]
