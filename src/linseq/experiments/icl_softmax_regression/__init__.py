"""In-context learning vs weight shifting for softmax regression (Li, Song, Xia, Yu, Zhou, arXiv 2304.13276).

Part A (:mod:`.identities`, :mod:`.part_a`): the exact float64 identities — closed-form gradient, weight-shift and
data-shift reformulations, measured shifts against the paper's bound and the softmax-Jacobian bound, and one GD
step written as one linear-attention layer. Part B (:mod:`.models`, :mod:`.training`): one-layer softmax and linear
self-attention trained on in-context tasks (:mod:`.tasks`) compared with one GD step. :func:`run_experiment` runs a
preset (``"ci"`` or ``"paper"``) and writes JSON + figures; :mod:`.report` renders the measured statement.
"""

from linseq.experiments.icl_softmax_regression.experiment import PRESETS, Preset, get_preset, run_experiment
from linseq.experiments.icl_softmax_regression.identities import (
    attention_gd_logits,
    data_shift_target,
    gd_logits,
    gd_step_from_zero,
    paper_log10_constant,
    self_attention_residual,
    softmax_jacobian,
    softmax_regression_gradient,
    softmax_regression_loss,
    softmax_unit,
    weight_shift_target,
)
from linseq.experiments.icl_softmax_regression.models import (
    ConstructedSoftmaxGD,
    LinearSelfAttention,
    OneStepGD,
    SoftmaxSelfAttention,
    fit_gd_learning_rate,
    query_loss,
)
from linseq.experiments.icl_softmax_regression.tasks import SoftmaxRegressionTasks, TaskBatch
from linseq.experiments.icl_softmax_regression.training import TrainConfig, compare_with_gd, train_and_compare

__all__ = [
    "PRESETS", "Preset", "get_preset", "run_experiment",
    "SoftmaxRegressionTasks", "TaskBatch",
    "softmax_unit", "softmax_jacobian", "softmax_regression_loss", "softmax_regression_gradient",
    "weight_shift_target", "data_shift_target", "self_attention_residual", "paper_log10_constant",
    "gd_step_from_zero", "gd_logits", "attention_gd_logits",
    "LinearSelfAttention", "SoftmaxSelfAttention", "OneStepGD", "ConstructedSoftmaxGD",
    "fit_gd_learning_rate", "query_loss",
    "TrainConfig", "train_and_compare", "compare_with_gd",
]
