"""X12 test material: the sample files (tests/data/x12), small interchanges built by hand (an 837 of two claims,
an 835 paying them, a 4010 835 taking them back) and readers of an import's frames."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.contract.bounds import MAX_CHARS

DATA = Path(__file__).resolve().parents[1] / "data" / "x12"
#: a claim id one character over the contract's length
ID_TOO_LONG = "C" * (MAX_CHARS["claim_id"] + 1)
SAMPLES = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix not in (".md", ".csv"))


def claims_of(result) -> pd.DataFrame:
    return result.history.claims.set_index("claim_id")


def lines_of(result, claim_id: str) -> pd.DataFrame:
    lines = result.history.claim_lines
    return lines[lines["claim_id"] == claim_id].sort_values("line_number").reset_index(drop=True)


def interchange(
    body: list[str],
    *,
    st: str = "837",
    version: str = "005010X222A1",
    func: str = "HC",
    e: str = "*",
    c: str = ":",
    t: str = "~",
    nl: str = "",
    control: str = "000000001",
) -> str:
    """An ISA/GS/ST..SE/GE/IEA envelope around ``body`` (written with '*' and ':'), with correct counts."""
    isa = e.join(
        [
            "ISA",
            "00",
            " " * 10,
            "00",
            " " * 10,
            "ZZ",
            "SENDER".ljust(15),
            "ZZ",
            "RECEIVER".ljust(15),
            "240101",
            "1200",
            "^",
            "00501",
            control,
            "0",
            "P",
            c,
        ]
    )
    segs = [f"ST*{st}*0001*{version}"] + body
    segs.append(f"SE*{len(segs) + 1}*0001")
    segs = [f"GS*{func}*S*R*20240102*1200*1*X*{version}"] + segs + ["GE*1*1", f"IEA*1*{control}"]
    return isa + t + nl + "".join(s.replace("*", e).replace(":", c) + t + nl for s in segs)


CLAIMS_837 = [
    "BHT*0019*00*B1*20240103*1200*CH",
    "NM1*41*2*SUBMITTER*****46*S1",
    "HL*1**20*1",
    "PRV*BI*PXC*207Q00000X",
    "NM1*85*2*CLINIC*****XX*1234567893",
    "N3*1 MAIN",
    "N4*TOWN*NY*10001",
    "HL*2*1*22*0",
    "SBR*P*18*******MB",
    "NM1*IL*1*DOE*JANE****MI*M123",
    "NM1*PR*2*MEDICARE*****PI*MCR01",
    "CLM*C1*150***11:B:1*Y*A*Y*Y",
    "PWK*OZ*BM",
    "REF*G1*PA999",
    "HI*ABK:J01.90*ABF:R05",
    "NM1*82*1*DOC*JOHN****XX*1111111112",
    "SBR*S*18*******CI",
    "NM1*IL*1*DOE*JANE****MI*OTHER-MEMBER",
    "NM1*PR*2*OTHER PAYER*****PI*OTHER",
    "LX*1",
    "SV1*HC:99213:25*100*UN*1***1:2",
    "DTP*472*D8*20231201",
    "REF*6R*L1",
    "LX*2",
    "SV1*HC:85025*50*UN*2***1",
    "DTP*472*RD8*20231201-20231202",
    "CLM*C2*80***22:B:7*Y*A*Y*Y",
    "HI*ABK:M545",
    "LX*1",
    "SV1*HC:97110:GP*80*UN*4***1",
    "DTP*472*D8*20231205",
]


PAYMENT_835 = [
    "BPR*I*180*C*CHK************20240120",
    "TRN*1*T1*1999999999",
    "DTM*405*20240119",
    "N1*PR*MEDICARE*XV*MCR01",
    "N1*PE*CLINIC*XX*1234567893",
    "LX*1",
    "CLP*C1*1*150*120**MB*ICN1*11*1",
    "SVC*HC:85025*50*40**2",
    "DTM*472*20231201",
    "SVC*HC:99213:25*100*80**1",
    "DTM*472*20231201",
    "CAS*CO*45*20",
    "CLP*C2*1*80*60**MB*ICN2*11*7",
    "SVC*HC:97110:GP*80*60**4",
    "CAS*CO*45*20",
]


TAKEBACK_835 = [  # 4010, no BPR16: the date comes from DTM*405
    "BPR*H*0*C*NON",
    "TRN*1*T2*1999999999",
    "DTM*405*20240301",
    "N1*PR*MEDICARE",
    "REF*2U*MCR01",
    "N1*PE*CLINIC*FI*999999999",
    "LX*1",
    "CLP*C1*22*-150*-120**MB*ICN1",
    "CAS*CO*18*-30",
    "SVC*HC:99213:25*-100*-80**1",
    "CAS*CO*45*-20",
    "PLB*1234567893*20241231*WO:C2*60*WO:C1*120*WO:NOPE*10*CS*5",
]


INSTITUTIONAL_837 = [
    s.replace("SV1*HC:99213:25*100*UN*1***1:2", "SV2*0450*HC:99283*100*UN*1")
    .replace("SV1*HC:85025*50*UN*2***1", "SV2*0300*HC:85025*50*UN*2")
    .replace("SV1*HC:97110:GP*80*UN*4***1", "SV2*0420*HC:97110*80*UN*4")
    .replace("CLM*C1*150***11:B:1", "CLM*C1*150***13:A:1")
    .replace("CLM*C2*80***22:B:7", "CLM*C2*80***13:A:7")
    for s in CLAIMS_837
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def segment_number(body: list[str], prefix: str) -> int:
    """The file's segment number of the first body segment starting with ``prefix`` (ISA, GS, ST first):
    a bad charge or units names the SV1/SV2 segment itself."""
    return next(i for i, s in enumerate(body) if s.startswith(prefix)) + 4


BAD_NUMBERS = ["1e308", "inf", "-inf", "NaN", "1e20", "１２", "1_000", "0x10", "٣"]
