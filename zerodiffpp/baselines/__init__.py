"""The simple-baseline panel: what every zero-shot result of this project is compared against.

A generative model earns its complexity only by beating the simplest models that use the same
features, attributes and splits. The panel (`panel.panel`) runs, on one prepared split:

  eszsl      ESZSL as published (Romera-Paredes & Torr 2015; Xian et al. 2019): a closed-form
             bilinear map from centred features to attributes (`eszsl`)
  ridge      ridge regression from class attributes to real class mean features, nearest predicted
             mean, in the scaled feature space or after within-class whitening (`prototypes`)
  ceiling    a linear classifier trained on real unseen features (cross-validated): what a perfect
             generator could at most give a linear classifier (`ceiling`)
  linear_seen  a linear classifier on the seen classes, scored on test-seen images (`ceiling`)

GZSL scores of eszsl and ridge go through a softmax and calibrated stacking (`stacking`). Every
choice (regularisers, variant, calibrated-stacking value and softmax temperature) is made on a
validation split of the same seen ratio; the test split is scored once. Claims are made against
the panel's strongest member on T1 (`strongest`), never against a weak one: beating a mis-tuned
baseline shows nothing, and the strongest is the bar a reader would set.
"""
