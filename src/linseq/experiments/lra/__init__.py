"""Long-Range-Arena-style benchmark of softmax, Lightning and EcoFormer attention on offline ListOps/Pathfinder."""

from linseq.experiments.lra.presets import PRESETS, LRAConfig, preset
from linseq.experiments.lra.report import markdown_tables, plot_results
from linseq.experiments.lra.runner import run_lra

__all__ = ["PRESETS", "LRAConfig", "preset", "run_lra", "markdown_tables", "plot_results"]
