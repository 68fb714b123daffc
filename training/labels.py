"""Labels for training: the shared definition lives in :mod:`features.model.outcomes`."""

from features.model.outcomes import make_labels, truncate_history

__all__ = ["make_labels", "truncate_history"]
