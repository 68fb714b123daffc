"""Running the pipeline on a Dask cluster (issue #15, docs/scale.md): the client, the feature table by time
partitions. Nothing here is imported on the single-process path."""
