"""The claims store (docs/store.md): a claims history that grows by ingestion, in the data contract, kept as
month-partitioned (hive-style) Parquet with a manifest of what has been ingested.

Units of ingestion (:class:`~features.store.unit.Unit`) come from the sources (X12 transactions, contract table
files); the store writes them atomically and idempotently and reads them back as a validated ``History``."""
