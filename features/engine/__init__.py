"""The machinery under the feature families: event tables, the online history state, array helpers."""
