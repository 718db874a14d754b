"""scripts/pooled_kmeans_probe: k-means refines only the rows a GZSL rule calls unseen, on hand-made points."""
import numpy as np

from scripts.pooled_kmeans_probe import gzsl, refine_called_unseen

UNSEEN = np.array([10, 11])
MEANS = np.array([[0.0, 0.0], [2.0, 0.0]])  # the starting unseen means, rows in UNSEEN's order
# A, B, C, D called unseen; E called seen (class 1), far to the left of every unseen point
Z = np.array([[0.0, 0.0], [1.1, 0.0], [3.0, 0.0], [3.2, 0.0], [-5.0, 0.0]])
PRED = np.array([10, 10, 11, 11, 1])


def test_no_update_is_the_nearest_starting_mean():
    assert refine_called_unseen(Z, PRED, UNSEEN, MEANS, 0).tolist() == [10, 11, 11, 11, 1]


def test_one_update_moves_the_means_of_the_called_unseen_rows_only():
    """After one update m10 = A = (0, 0) and m11 = mean(B, C, D) = (2.43, 0): B (1.1 from m10, 1.33 from m11)
    goes to 10. Were E (called seen) pooled in, it would join 10 first, pull m10 to (-2.5, 0) and leave B in 11;
    E keeps its seen label."""
    assert refine_called_unseen(Z, PRED, UNSEEN, MEANS, 1).tolist() == [10, 10, 11, 11, 1]


def test_nothing_called_unseen_leaves_the_labels():
    pred = np.array([1, 1, 2, 2, 1])
    assert refine_called_unseen(Z, pred, UNSEEN, MEANS, 5).tolist() == pred.tolist()


def test_gzsl_scores_and_the_share_of_right_unseen_labels():
    y = np.array([10, 10, 10, 11, 1, 1, 1, 2, 2])
    pred = np.array([10, 11, 1, 11, 1, 1, 10, 2, 1])  # 10: 1 of 3 right, 11: 1 of 1; seen 1: 2 of 3, 2: 1 of 2
    out = gzsl(y, pred, np.array([1, 2]), UNSEEN)
    # means of per-class accuracies, not the pooled 2 / 4 and 3 / 5
    assert np.isclose(out["U"], (1 / 3 + 1) / 2) and np.isclose(out["S"], (2 / 3 + 1 / 2) / 2)
    assert np.isclose(out["H"], 2 * out["U"] * out["S"] / (out["U"] + out["S"]))
    # unseen labels 10, 11, 11, 10 given, two right: 2 / 4, not the 5 / 9 right over every row
    assert np.isclose(out["unseen_labels_right"], 2 / 4)
