"""Linear probes for an attribute: the shared probe (shared/probes.py), re-exported here.

The write-up (post 3, "Intermediate Layers Have Linearly Recoverable Sport Info") trains a
logistic-regression probe for the sport on the residual stream of each layer, on 80% of the
names, and reports validation accuracy on the other 20% for 10 random splits. Here:

- features are standardised with the training rows' mean and standard deviation;
- the objective is mean cross-entropy + `l2` * ||W||^2 / 2 (bias not penalised), minimised
  full-batch with L-BFGS (strong Wolfe line search) from zero weights: deterministic for fixed
  inputs on CPU;
- the splits of one feature set are fitted as one batched problem: the objective is a sum of
  independent convex problems, so its minimiser is every split's own minimiser.
"""

from shared.probes import ProbeFit, cross_validated_accuracy, fit_logistic, n_train, splits

__all__ = ["ProbeFit", "cross_validated_accuracy", "fit_logistic", "n_train", "splits"]
