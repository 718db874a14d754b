"""scripts/calibration_transfer_probe: the value carried from one task to another, on a hand-made case."""
import numpy as np

from scripts.calibration_transfer_probe import curve, transfer


def task(p_seen_img, p_unseen_img):
    """Classes 0 (seen) and 1 (unseen); one image of each with the given probabilities [seen, unseen]."""
    return dict(ps=np.array([p_seen_img]), ys=np.array([0]), pu=np.array([p_unseen_img]), yu=np.array([1]),
                classes=np.array([0, 1]), seen=np.array([0]), unseen=np.array([1]))


def test_curve_subtracts_from_the_seen_class_in_each_form():
    t = task([0.405, 0.595], [0.305, 0.695])
    prob = {round(r["calibration"], 2): r["H"] for r in curve(t, "probability")}
    # the seen image is right once 0.405 - g > 0.595 (g < -0.19), the unseen one while 0.305 - g < 0.695 (g > -0.39)
    assert prob[0.0] == 0.0 and prob[-0.2] == 1.0 and prob[-0.38] == 1.0 and prob[-0.4] == 0.0
    log = {round(r["calibration"], 1): r["H"] for r in curve(t, "log-probability")}
    # log 0.405 - g > log 0.595 for g < -0.385; log 0.305 - g < log 0.695 for g > -0.824
    assert log[-0.3] == 0.0 and log[-0.4] == 1.0 and log[-0.7] == 1.0 and log[-0.9] == 0.0


def test_transfer_reads_the_inner_value_on_the_outer_curve():
    inner = task([0.405, 0.595], [0.305, 0.695])    # best H at -0.2 (nearest 0 of -0.2 .. -0.38)
    outer = task([0.55, 0.45], [0.1, 0.9])      # best H for -0.8 < g < 0.1: at 0; at -0.2 still right
    r = transfer(inner, outer, "probability")
    assert (r["inner_value"], r["outer_value"]) == (-0.2, 0.0)
    assert r["H_at_inner"] == 1.0 and r["H_relative"] == 0.0
    outer = task([0.55, 0.45], [0.45, 0.55])    # best at 0; at -0.2 the unseen image goes to the seen class
    assert transfer(inner, outer, "probability")["H_at_inner"] == 0.0
