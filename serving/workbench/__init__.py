"""The audit workbench (issue #17, docs/workbench.md): audit teams work the worklist of ``recoup audit`` in a
browser — filter, open a claim with its evidence, record the outcome — and the outcomes go back into the store."""
