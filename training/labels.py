"""Labels for training: the shared definition lives in :mod:`features.outcomes`."""

from features.outcomes import make_labels, truncate_history

__all__ = ["make_labels", "truncate_history"]
