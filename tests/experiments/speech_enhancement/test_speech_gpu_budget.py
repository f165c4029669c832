import pytest


def test_training_minutes_are_cut_to_end_before_the_deadline(load_script):
    mod = load_script("benchmarks/speech_gpu.py")
    assert mod.fit_training_minutes(5.0, 600.0) == 5.0  # room to spare: unchanged
    # the fourteenth run's call: 5 min asked, 333 s left to the training deadline; it overran and was stopped
    fitted = mod.fit_training_minutes(5.0, 333.0)
    assert fitted == pytest.approx((333.0 - mod.TRAINER_OVERHEAD_S) / 60) and fitted < 5.0
    assert fitted * 60 + mod.TRAINER_OVERHEAD_S <= 333.0
    with pytest.raises(ValueError, match="raise SPEECH_TOTAL_S or lower SPEECH_MINUTES"):
        mod.fit_training_minutes(5.0, 100.0)
    assert mod.fit_training_minutes(0.5, 100.0) == 0.5  # a short smoke run that fits is left alone
