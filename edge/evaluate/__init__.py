"""Accuracy evaluation on labelled photo folders: ROC, TAR@FAR, 10-fold accuracy, rank-1, DIR."""

from facegate.evaluate.run import EvalReport, evaluate, plot_roc

__all__ = ["EvalReport", "evaluate", "plot_roc"]
