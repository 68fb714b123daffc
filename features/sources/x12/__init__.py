"""X12 837/835 files as a claims history in the data contract (docs/x12.md)."""
