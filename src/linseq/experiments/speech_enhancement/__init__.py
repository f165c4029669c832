"""Speech enhancement experiments: metrics, a classical baseline, training, evaluation and checkpoints for
FullSubNet / Fast FullSubNet (``linseq.models.speech``). See docs/speech.md."""
