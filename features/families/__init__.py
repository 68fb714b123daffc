"""Feature families: one module per family a billing person recognises (NCCI, MUE, duplicates, ...).

Each module declares its feature ``COLUMNS``, the ``RULES`` it emits, the history ``TABLES`` it reads,
its ``compute(ctx)`` and its ``reason(x, claim, hits)`` (see :mod:`features.families.base`).
:func:`registry` finds them (every module of this package but ``base``), so **adding a family is adding
a module here plus its test** (tests/features/families/): the pipeline computes it, the feature table
gets its columns (after the existing ones) and serving.reasons says its reason. A column belongs to
exactly one family (:func:`check`).

Families run claim-only ones first, then those reading entity tables, then those reading line
tables (so a batch can drop each table's search index once its last reader is done), by name
within each group.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType

from features.contract import CAUSES

#: the categorical model inputs, in table order (levels are learned at fit time by FeatureSpec)
CATEGORICAL = [
    "plan_type",
    "claim_type",
    "place_of_service",
    "frequency_code",
    "payer_id",
    "specialty",
    "main_procedure",
]
#: the numeric columns' order in the feature table, frozen: trained models depend on it (LightGBM's
#: ``feature_fraction`` samples columns by position). Columns of new families follow in registry order.
TABLE_ORDER = (
    *"total_charge n_lines total_units max_line_units max_line_charge charge_per_unit em_level em_new_patient".split(),
    *"n_non_em_lines n_procedure_lines n_dx n_dx_z n_dx_r n_dx_invalid n_dx_truncated has_mod_59 has_mod_x".split(),
    *"has_mod_25 has_mod_76_77 n_modifiers mod25_without_procedure max_mue_ratio n_mue_exceeded".split(),
    *"mue_excess_units ptp_pairs ptp_unbypassable ptp_needs_modifier ptp_bypassed n_addon_without_primary".split(),
    *"submission_lag_days service_span_days has_prior_auth has_attachment is_replacement is_void".split(),
    *"outside_coverage covered_by_other_payer days_outside_coverage days_since_coverage_start".split(),
    *"provider_n_claims provider_recoup_rate provider_recoup_ratio".split(),
    *(f"{k}_{c}" for c in CAUSES for k in ("provider_rate", "provider_ratio", "payer_rate")),
    *"payer_recoup_rate specialty_recoup_rate provider_em_high_share provider_em_high_vs_peers".split(),
    *"provider_em_level_vs_peers provider_mod59_share_vs_peers charge_vs_provider_avg charge_vs_specialty_avg".split(),
    *"provider_claims_90d provider_growth_90d patient_n_claims patient_claims_30d patient_claims_365d".split(),
    *"procedure_recoup_rate procedure_rate_documentation procedure_rate_medical_necessity".split(),
    *"procedure_rate_procedure_coding procedure_rate_bundling procedure_rate_units patient_n_recouped".split(),
    *"patient_eligibility_recoups dup_lines_matched dup_share_lines_matched dup_all_lines_matched".split(),
    *"sameday_prior_lines dup_days_since_match ptp_cross_claim ptp_cross_claim_needs_modifier dx_support_min".split(),
    *"pos_support_min procedure_history_min dx_principal_support_min dx_principal_pairs_min".split(),
    *"dx_principal_support_specialty_min attachment_expected prior_auth_expected attachment_missing_expected".split(),
    "prior_auth_missing_expected",
)
#: the entity tables (one row of sums per provider, patient, ...); other tables are keyed by line
ENTITY_TABLES = frozenset({"provider", "patient", "payer", "specialty", "procedure", "all"})
_REQUIRED = ("NAME", "COLUMNS", "RULES", "TABLES", "ROUNDED", "compute", "reason")


def discover(package: str = __name__) -> list[ModuleType]:
    """The family modules of ``package`` (every module but ``base`` and private ones), checked and in run
    order."""
    pkg = importlib.import_module(package)
    mods = [
        importlib.import_module(f"{package}.{m.name}")
        for m in pkgutil.iter_modules(pkg.__path__)
        if m.name != "base" and not m.name.startswith("_")
    ]
    return check(mods)


@functools.cache
def _registry() -> tuple[ModuleType, ...]:
    return tuple(discover())


def registry() -> list[ModuleType]:
    """The feature families of this package, in run order."""
    return list(_registry())


def _stage(fam: ModuleType) -> int:
    if not fam.TABLES:
        return 0
    return 1 if set(fam.TABLES) <= ENTITY_TABLES else 2


def check(families: list[ModuleType]) -> list[ModuleType]:
    """``families`` in run order, after checking each declares a family and no column, rule or name is
    declared twice."""
    owner: dict[tuple[str, str], str] = {}
    for fam in families:
        missing = [a for a in _REQUIRED if not hasattr(fam, a)]
        if missing:
            raise TypeError(f"feature family {fam.__name__} lacks {missing}")
        for kind, names in (("name", [fam.NAME]), ("column", fam.COLUMNS), ("rule", fam.RULES)):
            for k in names:
                if (kind, k) in owner:
                    raise ValueError(f"{kind} {k!r} declared by families {owner[kind, k]!r} and {fam.NAME!r}")
                owner[kind, k] = fam.NAME
        if not set(fam.ROUNDED) <= set(fam.COLUMNS):
            raise ValueError(f"family {fam.NAME!r} rounds columns it does not declare")
    return sorted(families, key=lambda f: (_stage(f), f.NAME))


def table_columns(families: list[ModuleType]) -> list[str]:
    """The numeric columns of the feature table in order: :data:`TABLE_ORDER`, then new ones."""
    cats = set(CATEGORICAL)
    declared = [c for f in families for c in f.COLUMNS if c not in cats]
    have = set(declared)
    known = set(TABLE_ORDER)
    return [c for c in TABLE_ORDER if c in have] + [c for c in declared if c not in known]


@functools.cache
def _by_column() -> dict[str, str]:
    return {c: f.NAME for f in _registry() for c in f.COLUMNS}


def family_of(feature: str) -> str:
    """The family of a feature column ("other" for a column no family declares)."""
    return _by_column().get(feature, "other")


@functools.cache
def _by_name() -> dict[str, ModuleType]:
    return {f.NAME: f for f in _registry()}


def family(name: str) -> ModuleType | None:
    """The family module called ``name``."""
    return _by_name().get(name)


@functools.cache
def _by_rule() -> dict[str, ModuleType]:
    return {r: f for f in _registry() for r in f.RULES}


def family_of_rule(rule: str) -> ModuleType | None:
    """The family that emits rule hits called ``rule``."""
    return _by_rule().get(rule)
