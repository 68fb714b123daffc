"""The filtered worklist as CSV or Excel: flat columns, and formula-safe — a text cell starting with ``= + - @``,
a tab or a carriage return gets a leading ``'`` (``features.outputs.escape_formulas``, as ``recoup audit``'s CSV),
so a spreadsheet shows it as text instead of running it; numbers stay numbers."""

from __future__ import annotations

import datetime as dt
import io

import pandas as pd

from serving.workbench.queries import EXPORT_COLUMNS


def frame(rows: list[dict]) -> pd.DataFrame:
    """The export rows as a frame of :data:`EXPORT_COLUMNS` (dates as YYYY-MM-DD text), formula-escaped."""
    from features.outputs import escape_formulas

    df = pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))
    for c in ("submitted_date", "paid_date"):
        df[c] = [d.isoformat() if isinstance(d, (dt.date, dt.datetime)) else (d or "") for d in df[c]]
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].where(df[c].notna(), "")
    return escape_formulas(df)


def to_csv(rows: list[dict]) -> bytes:
    """CSV, UTF-8 with a byte-order mark (spreadsheets then read it as UTF-8), CRLF line ends."""
    buf = io.StringIO()
    frame(rows).to_csv(buf, index=False, lineterminator="\r\n")
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def to_xlsx(rows: list[dict]) -> bytes:
    """An Excel workbook (one sheet, ``worklist``), every text cell stored as text (never a formula)."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    df = frame(rows)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("worklist")
    ws.append(list(df.columns))
    for row in df.itertuples(index=False, name=None):
        cells = []
        for v in row:
            if isinstance(v, str):
                c = WriteOnlyCell(ws, value=None)
                c.value = v
                c.data_type = "s"  # text, even when it starts with '=' (escaped anyway)
                cells.append(c)
            else:
                cells.append(None if pd.isna(v) else v.item() if hasattr(v, "item") else v)
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
