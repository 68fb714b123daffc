"""Where claims histories come from besides the contract's own tables: the synthetic generator and X12 files.

Neither training nor serving imports these; the commands ``generate`` and ``import-x12`` do."""
