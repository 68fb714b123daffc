"""The same pipeline on a Dask cluster (``--cluster ADDRESS|local[:N]``, docs/scale.md).

Nothing here is imported on the single-process path: ``client.cluster_spec`` reads the option and the environment
without importing Dask; ``client.connect`` imports ``distributed`` only when there is a cluster."""
