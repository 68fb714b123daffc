"""Time-ordered split of matured claims: train on older, early-stop and calibrate on later, report on latest."""

from __future__ import annotations

import numpy as np
import pandas as pd


def time_split(
    labels: pd.DataFrame, valid_fraction: float, test_fraction: float, usable: pd.Series | None = None
) -> pd.Series:
    """``train`` / ``valid`` / ``test`` / ``immature`` per claim, cut on submission dates (no random split).

    Only ``usable`` claims (default: ``labels["mature"]``) get a slice; the others are ``immature``. Cuts fall
    between dates, so one day's claims stay in one slice.
    """
    part = pd.Series("immature", index=labels.index, dtype=object)
    mature = labels[labels["mature"] if usable is None else usable]
    if len(mature) == 0:
        return part
    dates = np.sort(mature["submitted_date"].to_numpy())
    n = len(dates)
    d_valid = dates[min(int(n * (1 - valid_fraction - test_fraction)), n - 1)]
    d_test = dates[min(int(n * (1 - test_fraction)), n - 1)]
    sd = mature["submitted_date"]
    part.loc[mature.index[sd < d_valid]] = "train"
    part.loc[mature.index[(sd >= d_valid) & (sd < d_test)]] = "valid"
    part.loc[mature.index[sd >= d_test]] = "test"
    return part
