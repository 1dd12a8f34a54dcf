"""Linear probes for an attribute: the shared probe (shared/probes.py), re-exported here.

The write-up (post 3, "Intermediate Layers Have Linearly Recoverable Sport Info") trains a
logistic-regression probe for the sport on the residual stream of each layer, on 80% of the
names, and reports validation accuracy on the other 20% for 10 random splits; how the probe
is fitted is in shared/probes.py.
"""

from shared.probes import ProbeFit, cross_validated_accuracy, fit_logistic, n_train, splits

__all__ = ["ProbeFit", "cross_validated_accuracy", "fit_logistic", "n_train", "splits"]
