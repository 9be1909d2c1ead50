"""Training, checkpointing and loading of the Mini-GPT.

* :func:`train` trains or exactly resumes a run in a folder (AdamW with warm-up and
  cosine decay; orbax checkpoints that survive ``SIGKILL``);
* :func:`restore_checkpoint` reads and verifies a run's checkpoint;
* :func:`load_pretrained` loads the shipped model (or an exported / run folder);
* :func:`params_sha256` fingerprints a parameter pytree.
"""

from jaxsample.training.checkpoint import (
    KILL_DURING_SAVE_ENV,
    CheckpointDir,
    CheckpointError,
    leaf_digests,
    named_leaves,
    params_sha256,
    path_name,
)
from jaxsample.training.pretrained import (
    PRETRAINED_FORMAT,
    SHIPPED_MODEL_DIR,
    Pretrained,
    export_pretrained,
    load_pretrained,
)
from jaxsample.training.train import (
    CHECKPOINT_FORMAT,
    EvalPoint,
    TrainConfig,
    TrainResult,
    TrainState,
    batch_indices,
    make_optimizer,
    restore_checkpoint,
    train,
)

__all__ = [
    "CHECKPOINT_FORMAT",
    "KILL_DURING_SAVE_ENV",
    "PRETRAINED_FORMAT",
    "SHIPPED_MODEL_DIR",
    "CheckpointDir",
    "CheckpointError",
    "EvalPoint",
    "Pretrained",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "batch_indices",
    "export_pretrained",
    "leaf_digests",
    "load_pretrained",
    "make_optimizer",
    "named_leaves",
    "params_sha256",
    "path_name",
    "restore_checkpoint",
    "train",
]
