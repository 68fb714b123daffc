"""Rebuild the packaged rulebook (Parquet) from the raw CMS / X12 / NUCC / ICD-10-CM files.

Usage::

    python -m features.rulebook.build --reference PATH/TO/reference [--out features/rulebook/data]
        [--version 2024Q3]

Expected file names (newer quarters: keep the stem, change the date; the newest match wins):
``ncci_ptp_practitioner_*.csv[.gz]``, ``ncci_ptp_outpatient_hospital_*.csv[.gz]``,
``ncci_mue_practitioner_*.csv``, ``ncci_mue_outpatient_hospital_*.csv``,
``ncci_addon_code_edits_*.csv``, ``icd10cm_code_list_*.txt``, ``carc_rarc_group_codes_*.csv``,
``place_of_service_codes_*.csv``, ``modifiers_*.csv``, ``hcpcs_level2_descriptions_*.csv``,
``nucc_taxonomy_*.csv``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).parent / "data"


def _newest(ref: Path, pattern: str) -> Path:
    found = sorted(ref.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{ref}: no file matching {pattern}")
    return found[-1]


def _ptp(path: Path) -> pd.DataFrame:
    """One row per (column_1, column_2, deletion_date), sorted.

    A pair can appear several times with different deletion dates (and, in 21k pairs, different
    modifier indicators): each row is one period of the edit. All periods are kept; the lookup
    picks, for a service date, the row with the earliest deletion date on or after it.
    """
    df = pd.read_csv(path, dtype=str, usecols=["column_1", "column_2", "deletion_date", "modifier_indicator"])
    for c in ("column_1", "column_2", "deletion_date", "modifier_indicator"):
        df[c] = df[c].str.strip()
    df["deletion_date"] = df["deletion_date"].astype("int32")
    df["modifier_indicator"] = df["modifier_indicator"].astype("int8")
    # Exact repeats of a pair and deletion date differing only in the rationale (2024Q3: 88108/88162,
    # same indicator): keep one, deterministically.
    df = df.sort_values(["column_1", "column_2", "deletion_date", "modifier_indicator"]).drop_duplicates(
        ["column_1", "column_2", "deletion_date"], keep="first"
    )
    return df.reset_index(drop=True)


def _mue(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str)
    out = pd.DataFrame(
        {
            "code": df["hcpcs_code"].str.strip(),
            "mue_units": pd.to_numeric(df["mue_units"]).astype("float32"),
            "mai": pd.to_numeric(df["mue_mai"]).astype("int8"),
        }
    )
    return out.drop_duplicates("code").reset_index(drop=True)


def _icd10(path: Path) -> pd.DataFrame:
    codes = [c.strip() for c in path.read_text().splitlines()]
    codes = sorted({c for c in codes if re.fullmatch(r"[A-Z][0-9][0-9A-Z]{1,5}", c)})
    arr = np.array(codes)
    # A code is billable when no other code extends it (it is a leaf of the hierarchy).
    nxt = np.append(arr[1:], "")
    billable = ~np.char.startswith(nxt.astype(str), arr.astype(str))
    return pd.DataFrame({"code": arr, "billable": billable})


def build(reference: Path, out: Path, version: str) -> dict:
    """Read the raw tables under ``reference`` and write the compact Parquet rulebook to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}

    def save(name: str, df: pd.DataFrame) -> None:
        df.to_parquet(out / f"{name}.parquet", index=False, compression="zstd")
        written[name] = len(df)
        print(f"  {name}: {len(df):,} rows", file=sys.stderr)

    save("ptp_professional", _ptp(_newest(reference, "ncci_ptp_practitioner_*.csv*")))
    save("ptp_institutional", _ptp(_newest(reference, "ncci_ptp_outpatient_hospital_*.csv*")))
    save("mue_professional", _mue(_newest(reference, "ncci_mue_practitioner_*.csv")))
    save("mue_institutional", _mue(_newest(reference, "ncci_mue_outpatient_hospital_*.csv")))
    aoc = pd.read_csv(_newest(reference, "ncci_addon_code_edits_*.csv"), dtype=str)
    aoc["aoc_edit_type"] = aoc["aoc_edit_type"].astype("int8")
    save("addon", aoc.drop_duplicates().reset_index(drop=True))
    save("icd10cm", _icd10(_newest(reference, "icd10cm_code_list_*.txt")))
    carc = pd.read_csv(_newest(reference, "carc_rarc_group_codes_*.csv"), dtype=str)
    carc = carc.rename(columns={"adj_code": "code", "adj_type": "type", "adj_description": "description"})
    save("adjustment_codes", carc[["code", "type", "description", "adj_start_date", "adj_end_date"]])
    pos = pd.read_csv(_newest(reference, "place_of_service_codes_*.csv"), dtype=str)
    save(
        "place_of_service",
        pos[["pos_code", "pos_type", "pos_name"]].rename(
            columns={"pos_code": "code", "pos_type": "type", "pos_name": "name"}
        ),
    )
    mods = pd.read_csv(_newest(reference, "modifiers_*.csv"), dtype=str)
    save(
        "modifiers",
        mods[["mod_code", "mod_type", "mod_description"]]
        .rename(columns={"mod_code": "code", "mod_type": "type", "mod_description": "description"})
        .drop_duplicates("code"),
    )
    hcpcs = pd.read_csv(_newest(reference, "hcpcs_level2_descriptions_*.csv"), dtype=str)
    hcpcs = hcpcs.sort_values("hcpcs_desc_type").drop_duplicates("hcpcs_code", keep="first")
    save(
        "hcpcs_level2",
        hcpcs[["hcpcs_code", "hcpcs_section", "hcpcs_description"]].rename(
            columns={"hcpcs_code": "code", "hcpcs_section": "section", "hcpcs_description": "description"}
        ),
    )
    nucc = pd.read_csv(_newest(reference, "nucc_taxonomy_*.csv"), dtype=str)
    save(
        "nucc_taxonomy",
        nucc[["Code", "Grouping", "Classification", "Specialization", "Display Name"]].rename(
            columns={
                "Code": "code",
                "Grouping": "grouping",
                "Classification": "classification",
                "Specialization": "specialization",
                "Display Name": "display_name",
            }
        ),
    )
    meta = {
        "rulebook_version": version,
        "ncci_ptp": _newest(reference, "ncci_ptp_practitioner_*.csv*").name,
        "ncci_mue": _newest(reference, "ncci_mue_practitioner_*.csv").name,
        "addon": _newest(reference, "ncci_addon_code_edits_*.csv").name,
        "icd10cm": _newest(reference, "icd10cm_code_list_*.txt").name,
        "rows": written,
    }
    (out / "version.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def _guess_version(reference: Path) -> str:
    name = _newest(reference, "ncci_ptp_practitioner_*.csv*").name
    m = re.search(r"(\d{4})-(\d{2})-\d{2}", name)
    if not m:
        return "unknown"
    year, month = int(m.group(1)), int(m.group(2))
    return f"{year}Q{(month - 1) // 3 + 1}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=Path, required=True, help="folder with the raw CMS tables")
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="where to write the Parquet rulebook")
    ap.add_argument("--version", default=None, help="rulebook version label (default: NCCI quarter)")
    args = ap.parse_args(argv)
    meta = build(args.reference, args.out, args.version or _guess_version(args.reference))
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
