"""X12 importer: 837P/837I claims and 835 remittances into a claims history (docs/x12.md).

Read in this order, each layer usable on its own:

- :mod:`~features.sources.x12.files`: paths expanded (files, folders, globs), bytes decoded (UTF-8, UTF-16, Latin-1);
- :mod:`~features.sources.x12.tokenizer`: delimiters from each ISA header, numbered segments;
- :mod:`~features.sources.x12.envelope`: interchanges cut into ``ST..SE`` transactions, envelope checks;
- :mod:`~features.sources.x12.elements` and :mod:`~features.sources.x12.codes`: element values (numbers, dates,
  bounded lengths, composites) and what X12 codes mean in the contract (placeholders, plan types, places of service);
- :mod:`~features.sources.x12.claims837` and :mod:`~features.sources.x12.remit835`: one state machine per
  transaction type, appending rows to a :class:`~features.sources.x12.parsed.Parsed`;
- :mod:`~features.sources.x12.units`: one store unit per transaction (``units_from_x12``, ``read_x12``);
- :mod:`~features.sources.x12.join`: the 837 side of an import (first claim per id) and its summary; the 835 side is
  :func:`features.store.remit.apply_remittances`, the store's read-time join;
- :mod:`~features.sources.x12.importer`: ``parse_x12``, ``import_x12`` and the ``recoup import-x12`` command.

Problems are :class:`~features.sources.x12.errors.X12Error` and :class:`~features.sources.x12.errors.Rejection`.
"""
