"""scripts/scoring_rule_probe: the rules score the ridge regression's means as they say."""
import dataclasses

import numpy as np

from scripts.scoring_rule_probe import rule_scores
from tests.tiny import tiny_prepared
from zerodiffpp.baselines.prototypes import Prototypes


def test_the_rules_against_their_definitions(tmp_path):
    """Euclidean: the panel's linear nearest mean; whitened: the panel's whitened one; cosine: blind to a
    test feature's distance from the training mean; dot product: not blind to it."""
    prep, _ = tiny_prepared(tmp_path)
    alpha = 0.1
    rules = rule_scores(prep, alpha)
    for name, variant in (("Euclidean nearest mean", "linear"), ("nearest mean, within-class whitened", "whitened")):
        np.testing.assert_array_equal(prep.unseen[rules[name].argmax(1)],
                                      Prototypes(prep, variant).zsl_predict(prep.x_test_unseen, alpha))
    m0 = prep.x_train.astype(np.float64).mean(0)
    far = prep.x_test_unseen.copy()
    far[::2] = m0 + 5.0 * (far[::2] - m0)  # every other test feature five times further out
    moved = rule_scores(dataclasses.replace(prep, x_test_unseen=far), alpha)
    cos = "cosine about the training mean"
    np.testing.assert_array_equal(moved[cos].argmax(1), rules[cos].argmax(1))
    np.testing.assert_allclose(moved[cos], rules[cos], atol=1e-5)
    dot = "dot product about the training mean"
    np.testing.assert_allclose(moved[dot][::2], 5.0 * rules[dot][::2], rtol=1e-4)

