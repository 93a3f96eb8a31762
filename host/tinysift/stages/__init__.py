"""The pipeline's stages, in pipeline order: each reads its inputs from a run folder (or a
dataset), calls the domain packages below it, and records itself in ``manifest.json``
(parameters, input hashes, outputs, timings), so an unchanged stage is skipped and a killed
run resumes.

    prune | condense -> train -> quantize -> export -> device

The domain packages (data, scoring, selection, condensation, models, quantize, export,
device) know nothing of run folders; only this package does.
"""

from tinysift.stages.condense import condense
from tinysift.stages.device import run_on_device
from tinysift.stages.export import export
from tinysift.stages.prune import prune, prune_many
from tinysift.stages.quantize import quantize
from tinysift.stages.train import train

__all__ = ["condense", "export", "prune", "prune_many", "quantize", "run_on_device", "train"]
