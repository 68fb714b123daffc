"""The data contract (docs/contract.md): its schema, checks, loader and writer.

The package's public names are re-exported here, so callers write ``from features.contract import History``."""

from features.contract.bounds import DATE_YEARS, MAX_AMOUNT, MAX_LINE_NUMBER, MAX_UNITS  # noqa: F401
from features.contract.load import (  # noqa: F401
    CAUSES,
    PLAN_TYPES,
    CLAIM_TYPES,
    FREQUENCY_CODES,
    DEFAULT_HORIZON_DAYS,
    CARC_TO_CAUSE,
    CAUSE_TO_CARC,
    cause_from_carc,
    causes_from_carcs,
    Column,
    TABLES,
    REQUIRED_TABLES,
    OPTIONAL_TABLES,
    Problem,
    MAX_EXAMPLE_CHARS,
    ContractError,
    History,
    empty_table,
    TABLE_EXTENSIONS,
    read_table_file,
    REJECTED_COLUMNS,
    load_history,
    FAST_PATH_MAX_ROWS,
    validate_table,
    check_relations,
    validate_frames,
    to_contract_frame,
    write_history,
    iter_problems_text,
)
