"""Static world of the synthetic generator: specialties, visit templates, fee schedule, diagnosis
families, payers and states (all codes are real CPT/HCPCS, ICD-10-CM and NUCC codes).

A *visit template* is a list of slots; each slot is included with a probability and then picks one
of its alternatives (a code, or several codes joined by ``+`` that are billed together). Slots
marked ``level`` hold ordered code levels (E/M levels, psychotherapy time, chiropractic regions):
the generator draws the clinically right level from the claim's complexity and lets providers with
an upcoding habit bill a higher one. Every template lists the diagnosis families that support it.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------
# Procedures: fee (billed charge per unit), typical units (lo, hi), kind
# --------------------------------------------------------------------------------------

#: kind -> documentation-risk weight (CERT: DME, therapy, high E/M and imaging are the riskiest)
KIND_RISK: dict[str, float] = {
    "em": 0.8,
    "em_high": 2.0,
    "proc": 1.0,
    "surg": 1.6,
    "img": 1.0,
    "img_adv": 2.0,
    "lab": 0.4,
    "pt": 2.0,
    "chiro": 2.2,
    "dme": 3.0,
    "drug": 0.8,
    "psy": 1.3,
    "psy_high": 1.8,
    "vax": 0.3,
    "test": 1.2,
    "addon": 0.8,
}
#: kinds that count as "another procedure" for modifier 25 on an E/M
PROCEDURE_KINDS = frozenset({"proc", "surg", "img", "img_adv", "pt", "chiro", "test", "psy", "psy_high"})

_FEES = """
99202 120 em|99203 180 em|99204 270 em|99205 350 em_high|99212 95 em|99213 145 em|99214 210 em
99215 290 em_high|36415 18 lab|81002 12 lab|93000 55 test|90471 35 vax|90686 40 vax|G2211 30 em
G0439 200 em|G0438 280 em|99397 250 em|99396 230 em|96127 15 test 1 2|99417 110 addon
93306 850 test|93350 900 test|78452 1400 img_adv|93015 220 test|93016 60 test|93017 110 test
93018 70 test|93320 180 addon|93321 90 addon|93325 110 addon|93356 140 addon|A9500 150 drug 1 2
J2785 55 drug 2 4|93224 300 test|93880 450 img
20610 190 proc|20611 280 proc|76942 160 img|J3301 12 drug 2 8|J7325 25 drug 16 48|73562 120 img
73564 150 img|73030 110 img|29881 4200 surg|29880 4500 surg|29877 3900 surg|L1832 950 dme
97161 190 pt|97162 200 pt|97163 220 pt|97164 120 pt|97110 65 pt 1 4|97140 60 pt 1 2|97530 70 pt 1 3
97112 70 pt 1 2|97116 60 pt 1 2|G0283 30 pt|97035 35 pt|97010 20 pt
98940 65 chiro|98941 85 chiro|98942 110 chiro|97012 40 pt|72100 130 img
17000 150 proc|17003 20 addon 2 9|17004 350 proc|11102 170 proc|11103 90 addon 1 2|11104 200 proc
11105 100 addon 1 2|17110 180 proc|10060 250 proc
45378 1600 surg|45380 1900 surg|45385 2300 surg|43239 1400 surg|43235 1200 surg|G0121 1500 surg
G0105 1500 surg
71046 120 img|71045 90 img|72148 1600 img_adv|73721 1500 img_adv|70450 900 img_adv
74177 2200 img_adv|74176 1700 img_adv|76700 550 img|76705 350 img|77067 320 img|77063 110 addon
77066 380 img
80053 60 lab|85025 40 lab|83036 45 lab|80061 70 lab|87086 45 lab|81001 18 lab|84443 65 lab
82306 120 lab|80048 45 lab|85027 35 lab|82947 18 lab|84132 20 lab|87088 40 lab|87186 40 lab 1 3
82565 25 lab
E0601 1200 dme|A7030 280 dme|A7037 70 dme|A7038 12 dme 2 2|E0114 85 dme|K0001 1100 dme
A4253 95 dme 1 2|A4259 30 dme|E0143 140 dme|E1390 450 dme
90791 320 psy|90792 380 psy|90834 170 psy|90837 240 psy_high|90832 110 psy|90833 90 addon
90836 120 addon|90785 40 addon
99281 120 em|99282 210 em|99283 380 em|99284 650 em|99285 1050 em_high|93010 45 test
12001 350 proc|12002 420 proc|99291 1200 em_high|99292 500 addon|96374 300 proc|96375 120 addon 1 2
J2405 8 drug 4 8|96360 350 proc|96361 120 addon 1 2
"""


@dataclass(frozen=True)
class Fee:
    code: str
    fee: float
    kind: str
    units_lo: int = 1
    units_hi: int = 1


def _parse_fees(text: str) -> dict[str, Fee]:
    out: dict[str, Fee] = {}
    for item in text.replace("\n", "|").split("|"):
        parts = item.split()
        if not parts:
            continue
        lo, hi = (int(parts[3]), int(parts[4])) if len(parts) == 5 else (1, 1)
        out[parts[0]] = Fee(parts[0], float(parts[1]), parts[2], lo, hi)
    return out


FEES: dict[str, Fee] = _parse_fees(_FEES)

#: codes whose payment needs paperwork (CMN / DIF / operative report) sent with the claim
NEEDS_ATTACHMENT = frozenset({"E0601", "E1390", "K0001", "L1832", "29880", "29881"})
#: code -> plan types that require a prior authorization number for it
NEEDS_PRIOR_AUTH: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ["72148", "73721", "70450", "74177", "74176", "78452"],
        frozenset({"medicare_advantage", "medicaid", "commercial"}),
    ),
    **dict.fromkeys(["E0601", "K0001", "E1390"], frozenset({"medicare_advantage", "medicaid", "commercial"})),
    "L1832": frozenset({"medicare", "medicare_advantage"}),
    **dict.fromkeys(["29880", "29881", "29877"], frozenset({"medicare_advantage", "commercial"})),
    **dict.fromkeys(["97161", "97162", "97163"], frozenset({"medicaid"})),
}
#: modifiers the generator may put on lines
MODIFIERS: tuple[str, ...] = (
    "",
    "25",
    "59",
    "XS",
    "XU",
    "XE",
    "GP",
    "AT",
    "26",
    "RR",
    "NU",
    "KX",
    "RT",
    "LT",
    "95",
    "TC",
)
BYPASS_MODIFIERS: tuple[str, ...] = ("59", "XS", "XU", "XE")
#: code -> its routine modifier (therapy GP, chiropractic AT, DME rental/new, ...)
ROUTINE_MODIFIER: dict[str, str] = {
    **dict.fromkeys(
        [
            "97161",
            "97162",
            "97163",
            "97164",
            "97110",
            "97140",
            "97530",
            "97112",
            "97116",
            "G0283",
            "97035",
            "97010",
            "97012",
        ],
        "GP",
    ),
    **dict.fromkeys(["98940", "98941", "98942"], "AT"),
    **dict.fromkeys(["E0601", "E1390", "K0001"], "RR"),
    **dict.fromkeys(["A7030", "A7037", "A7038", "E0114", "A4253", "A4259", "E0143", "L1832"], "NU"),
}

# --------------------------------------------------------------------------------------
# Diagnoses: family -> billable ICD-10-CM codes (no dots), and truncated (category) codes
# --------------------------------------------------------------------------------------

DX_FAMILIES: dict[str, tuple[str, ...]] = {
    "knee_oa": ("M1711", "M1712", "M170", "M179", "M25561", "M25562"),
    "meniscus": ("S83241A", "S83242A", "S83281A", "S83282A", "M23221", "M23222"),
    "shoulder": ("M7541", "M7542", "M19011", "M25511"),
    "low_back": ("M5450", "M5451", "M5459", "M5416", "M47816", "S39012A"),
    "neck": ("M542", "M5412", "S134XXA"),
    "gait": ("R262", "R2689", "M6281", "Z9181", "Z4789", "R2681"),
    "htn": ("I10", "I110", "I129"),
    "diabetes": ("E119", "E1165", "E1122", "E1140", "E1169"),
    "lipids": ("E785", "E7800", "E782"),
    "cad": ("I2510", "I209"),
    "chest": ("R079", "R0789", "R0602", "R002", "I480", "I4891"),
    "heart_failure": ("I5022", "I5032", "I509"),
    "uri": ("J069", "J029", "J209", "R051"),
    "wellness": ("Z0000", "Z0001", "Z1331"),
    "skin_lesion": ("L570", "L821", "D485", "D225", "B079"),
    "skin_inflam": ("L700", "L219", "L409", "L989", "L0291"),
    "gi_screen": ("Z1211", "K635", "D126", "Z860101"),
    "gi_symptom": ("K219", "K5730", "K5900", "K921", "R1010"),
    "depression": ("F329", "F331", "F4310"),
    "anxiety": ("F411", "F419", "F900"),
    "sleep_apnea": ("G4733", "G4730"),
    "mobility": ("M6281", "R262", "I69351", "R2681"),
    "thyroid": ("E039", "R5383"),
    "anemia": ("D649", "D509", "E559"),
    "uti": ("N390", "R300", "R350"),
    "injury": ("S0990XA", "S6291XA", "S01511A", "S61411A", "S52501A"),
    "acute_symptom": ("R1084", "R109", "R55", "T7840XA", "J189"),
    "breast_screen": ("Z1231", "R928"),
}
#: family -> non-billable category codes a sloppy coder truncates to (real pitfalls, e.g. M54.5 since 2021)
DX_TRUNCATED: dict[str, tuple[str, ...]] = {
    "knee_oa": ("M171",),
    "meniscus": ("S832",),
    "low_back": ("M545",),
    "htn": ("I11",),
    "diabetes": ("E11",),
    "lipids": ("E78",),
    "cad": ("I251",),
    "chest": ("R07",),
    "uri": ("R05", "J06"),
    "wellness": ("Z000",),
    "gi_symptom": ("K21",),
    "gi_screen": ("Z8601",),
    "depression": ("F32",),
    "sleep_apnea": ("G473",),
    "uti": ("N39",),
    "heart_failure": ("I50",),
}
#: secondary (comorbidity) diagnoses; a prime count so strided draws are distinct
COMORBIDITIES: tuple[str, ...] = (
    "I10",
    "E119",
    "E785",
    "E669",
    "Z87891",
    "Z794",
    "Z7984",
    "N1830",
    "E039",
    "D649",
    "F419",
    "F329",
    "K219",
    "I2510",
    "I480",
    "G4733",
    "M179",
    "R5383",
    "E559",
    "N1831",
    "E1165",
    "I129",
    "Z9181",
)

# --------------------------------------------------------------------------------------
# Specialties and their visit templates
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One template slot: included with probability ``p``; picks one weighted alternative."""

    alts: tuple[tuple[tuple[str, ...], float], ...]
    p: float = 1.0
    level: bool = False


def slot(spec: str, p: float = 1.0, level: bool = False) -> Slot:
    """``slot("99213:50 99214:30", p=1, level=True)``; ``a+b`` bills two codes together."""
    alts = []
    for tok in spec.split():
        code, _, w = tok.partition(":")
        alts.append((tuple(code.split("+")), float(w or 1)))
    return Slot(tuple(alts), p, level)


@dataclass(frozen=True)
class Visit:
    name: str
    weight: float
    families: tuple[str, ...]
    slots: tuple[Slot, ...]
    pos: str = ""  # overrides the specialty's professional place of service


@dataclass(frozen=True)
class Specialty:
    key: str
    taxonomy: str
    share: float  # share of providers
    inst_share: float  # share of its providers that are hospital outpatient departments (837I)
    pos: str  # professional place of service
    visits: tuple[Visit, ...]
    inst_pos: str = "22"
    addons: tuple[str, ...] = ()  # add-on codes a careless coder bills without their primary
    components: tuple[str, ...] = ()  # extra codes an unbundler adds (NCCI column-2 codes of its menu)


_EM_EST = "99212:12 99213:50 99214:32 99215:6"
_EM_NEW = "99202:10 99203:45 99204:35 99205:10"
_PC_FAM = ("htn", "diabetes", "lipids", "uri", "low_back", "anxiety", "depression", "gi_symptom", "thyroid", "cad")


def _primary_care(key: str, taxonomy: str, share: float, em_shift: str) -> Specialty:
    return Specialty(
        key,
        taxonomy,
        share,
        0.0,
        "11",
        (
            Visit(
                "office_est",
                0.62,
                _PC_FAM,
                (
                    slot(em_shift, level=True),
                    slot("36415", 0.25),
                    slot("81002", 0.06),
                    slot("93000", 0.07),
                    slot("90471+90686", 0.07),
                    slot("G2211", 0.15),
                    slot("96127", 0.05),
                ),
            ),
            Visit("office_new", 0.12, _PC_FAM, (slot(_EM_NEW, level=True), slot("36415", 0.2), slot("93000", 0.06))),
            Visit(
                "wellness",
                0.14,
                ("wellness",),
                (slot("G0439:5 99397:3 99396:2"), slot("36415", 0.3), slot("90471+90686", 0.1)),
            ),
            Visit(
                "lab_followup",
                0.12,
                ("diabetes", "lipids", "htn"),
                (slot("99212:30 99213:55 99214:15", level=True), slot("36415", 0.9), slot("81002", 0.2)),
            ),
        ),
        addons=("99417",),
    )


SPECIALTIES: tuple[Specialty, ...] = (
    _primary_care("family_medicine", "207Q00000X", 0.17, _EM_EST),
    _primary_care("internal_medicine", "207R00000X", 0.12, "99212:8 99213:46 99214:38 99215:8"),
    Specialty(
        "cardiology",
        "207RC0000X",
        0.06,
        0.2,
        "11",
        (
            Visit(
                "office",
                0.5,
                ("htn", "cad", "chest", "heart_failure", "lipids"),
                (slot(_EM_EST, level=True), slot("93000", 0.45)),
            ),
            Visit("echo", 0.22, ("heart_failure", "chest", "cad"), (slot("93306"), slot("93356", 0.1))),
            Visit("stress_echo", 0.1, ("chest", "cad"), (slot("93350"), slot("93320+93325", 0.3))),
            Visit(
                "nuclear",
                0.1,
                ("chest", "cad"),
                (slot("78452"), slot("93015:6 93016+93018:4"), slot("A9500", 0.9), slot("J2785", 0.4)),
            ),
            Visit("holter", 0.08, ("chest",), (slot("93224"),)),
        ),
        addons=("93320", "93356"),
    ),
    Specialty(
        "orthopaedics",
        "207X00000X",
        0.07,
        0.1,
        "11",
        (
            Visit(
                "office",
                0.45,
                ("knee_oa", "meniscus", "shoulder", "low_back"),
                (slot("99212:10 99213:50 99214:33 99215:7", level=True), slot("73562:6 73564:2 73030:2", 0.4)),
            ),
            Visit(
                "new_patient",
                0.12,
                ("knee_oa", "meniscus", "shoulder"),
                (slot(_EM_NEW, level=True), slot("73562:6 73030:4", 0.6)),
            ),
            Visit(
                "injection",
                0.25,
                ("knee_oa", "shoulder"),
                (
                    slot("99213:60 99214:40", 0.55, level=True),
                    slot("20610:8 20611:2"),
                    slot("J3301:7 J7325:3", 0.85),
                    slot("L1832", 0.05),
                ),
            ),
            Visit("arthroscopy", 0.18, ("meniscus", "knee_oa"), (slot("29881:7 29880:3"),), pos="24"),
        ),
        components=("76942", "29877"),
    ),
    Specialty(
        "physical_therapy",
        "225100000X",
        0.09,
        0.2,
        "11",
        (
            Visit(
                "evaluation",
                0.15,
                ("low_back", "neck", "gait", "knee_oa", "shoulder"),
                (slot("97161:30 97162:50 97163:20", level=True), slot("97110", 0.5), slot("97140", 0.3)),
            ),
            Visit(
                "treatment",
                0.8,
                ("low_back", "neck", "gait", "knee_oa", "shoulder", "meniscus"),
                (
                    slot("97110", 0.9),
                    slot("97140", 0.6),
                    slot("97530", 0.5),
                    slot("97112", 0.3),
                    slot("97116", 0.15),
                    slot("G0283", 0.2),
                    slot("97035", 0.1),
                ),
            ),
            Visit("reevaluation", 0.05, ("low_back", "gait", "knee_oa"), (slot("97164"), slot("97110", 0.7))),
        ),
    ),
    Specialty(
        "chiropractic",
        "111N00000X",
        0.06,
        0.0,
        "11",
        (
            Visit(
                "adjustment",
                0.85,
                ("low_back", "neck"),
                (
                    slot("98940:55 98941:38 98942:7", level=True),
                    slot("97140", 0.12),
                    slot("97012", 0.15),
                    slot("G0283", 0.15),
                    slot("97110", 0.1),
                ),
            ),
            Visit(
                "new_patient",
                0.15,
                ("low_back", "neck"),
                (slot("99202:30 99203:60 99204:10", level=True), slot("98940:6 98941:4"), slot("72100", 0.3)),
            ),
        ),
    ),
    Specialty(
        "dermatology",
        "207N00000X",
        0.05,
        0.0,
        "11",
        (
            Visit("office", 0.4, ("skin_inflam", "skin_lesion"), (slot(_EM_EST, level=True),)),
            Visit(
                "destruction",
                0.3,
                ("skin_lesion",),
                (slot("99213:60 99214:40", 0.3, level=True), slot("17000+17003:6 17000:3 17110:1")),
            ),
            Visit(
                "biopsy",
                0.25,
                ("skin_lesion",),
                (slot("99213:60 99214:40", 0.35, level=True), slot("11102:6 11102+11103:2 11104:2 11104+11105:1")),
            ),
            Visit("abscess", 0.05, ("skin_inflam",), (slot("10060"),)),
        ),
        addons=("17003", "11103"),
        components=("17004",),
    ),
    Specialty(
        "gastroenterology",
        "207RG0100X",
        0.04,
        0.2,
        "11",
        (
            Visit("office", 0.4, ("gi_symptom", "gi_screen"), (slot(_EM_EST, level=True),)),
            Visit(
                "colonoscopy",
                0.42,
                ("gi_screen", "gi_symptom"),
                (slot("45378:3 45380:4 45385:3 G0121:2 G0105:1"),),
                pos="24",
            ),
            Visit("egd", 0.18, ("gi_symptom",), (slot("43239:6 43235:4"),), pos="24"),
        ),
    ),
    Specialty(
        "radiology",
        "2085R0202X",
        0.05,
        0.4,
        "22",
        (
            Visit(
                "xray",
                0.4,
                ("chest", "uri", "knee_oa", "low_back", "injury", "acute_symptom"),
                (slot("71046:5 71045:2 73562:2 72100:2 73030:1"),),
            ),
            Visit(
                "advanced",
                0.3,
                ("low_back", "knee_oa", "meniscus", "injury", "acute_symptom", "gi_symptom"),
                (slot("72148:3 73721:2 70450:2 74177:3 74176:1"),),
            ),
            Visit("ultrasound", 0.12, ("gi_symptom", "acute_symptom"), (slot("76700:6 76705:4"),)),
            Visit("mammography", 0.18, ("breast_screen",), (slot("77067+77063:4 77067:3 77066:3"),)),
        ),
        addons=("77063",),
    ),
    Specialty(
        "laboratory",
        "291U00000X",
        0.06,
        0.3,
        "81",
        (
            Visit("diabetes", 0.3, ("diabetes",), (slot("83036"), slot("80053:5 80048:5", 0.7), slot("36415", 0.8))),
            Visit("lipids", 0.25, ("lipids", "htn", "cad"), (slot("80061"), slot("80053", 0.5), slot("36415", 0.8))),
            Visit(
                "wellness",
                0.2,
                ("wellness", "thyroid", "anemia"),
                (slot("80053"), slot("85025"), slot("84443", 0.5), slot("82306", 0.25), slot("36415", 0.8)),
            ),
            Visit("urine", 0.15, ("uti",), (slot("87086"), slot("81001", 0.7), slot("87088+87186", 0.3))),
            Visit("cbc", 0.1, ("anemia", "thyroid"), (slot("85025"), slot("36415", 0.8))),
        ),
        components=("82947", "84132", "82565", "85027"),
    ),
    Specialty(
        "dme_supplier",
        "332B00000X",
        0.05,
        0.0,
        "12",
        (
            Visit("cpap", 0.3, ("sleep_apnea",), (slot("E0601:4 A7030+A7037:3 A7038:3"),)),
            Visit("mobility", 0.22, ("mobility", "gait"), (slot("K0001:4 E0143:4 E0114:2"),)),
            Visit("orthosis", 0.18, ("knee_oa", "meniscus"), (slot("L1832"),)),
            Visit("diabetic_supplies", 0.22, ("diabetes",), (slot("A4253"), slot("A4259", 0.7))),
            Visit("oxygen", 0.08, ("heart_failure", "chest"), (slot("E1390"),)),
        ),
    ),
    Specialty(
        "psychiatry",
        "2084P0800X",
        0.06,
        0.0,
        "11",
        (
            Visit("psychotherapy", 0.5, ("depression", "anxiety"), (slot("90832:15 90834:55 90837:30", level=True),)),
            Visit(
                "med_management",
                0.35,
                ("depression", "anxiety"),
                (slot("99212:10 99213:45 99214:38 99215:7", level=True), slot("90833:7 90836:3", 0.3)),
            ),
            Visit("evaluation", 0.15, ("depression", "anxiety"), (slot("90791:7 90792:3"), slot("90785", 0.05))),
        ),
        addons=("90833", "90785"),
    ),
    Specialty(
        "emergency_medicine",
        "207P00000X",
        0.05,
        0.5,
        "23",
        (
            Visit(
                "ed_visit",
                0.72,
                ("chest", "acute_symptom", "uri", "injury", "uti"),
                (slot("99281:4 99282:10 99283:30 99284:34 99285:22", level=True), slot("93010", 0.15)),
            ),
            Visit(
                "ed_procedure",
                0.18,
                ("injury",),
                (slot("99282:15 99283:45 99284:40", level=True), slot("12001:7 12002:3")),
            ),
            Visit(
                "critical_care", 0.03, ("chest", "heart_failure", "acute_symptom"), (slot("99291"), slot("99292", 0.3))
            ),
            Visit(
                "ed_infusion",
                0.07,
                ("acute_symptom", "injury"),
                (slot("99283:40 99284:60", level=True), slot("96374:6 96360+96361:4"), slot("J2405", 0.7)),
            ),
        ),
        inst_pos="23",
        addons=("99292", "96375"),
    ),
)

# --------------------------------------------------------------------------------------
# Payers and geography
# --------------------------------------------------------------------------------------

STATES: tuple[str, ...] = ("CA", "TX", "FL", "NY", "OH")
STATE_WEIGHTS: tuple[float, ...] = (0.3, 0.25, 0.2, 0.15, 0.1)
PLAN_MIX: dict[str, float] = {"medicare": 0.30, "medicare_advantage": 0.22, "medicaid": 0.20, "commercial": 0.28}


@dataclass(frozen=True)
class Payer:
    payer_id: str
    plan_type: str
    state: str  # "" = national
    audit: float  # overall audit intensity multiplier
    ratio: float  # allowed / billed


PAYERS: tuple[Payer, ...] = (
    Payer("MCR-JE-01112", "medicare", "CA", 1.15, 0.31),
    Payer("MCR-JH-04412", "medicare", "TX", 1.05, 0.30),
    Payer("MCR-JN-09102", "medicare", "FL", 1.30, 0.30),
    Payer("MCR-JK-13282", "medicare", "NY", 0.95, 0.32),
    Payer("MCR-J15-15202", "medicare", "OH", 0.90, 0.31),
    Payer("MA-SUNCREST", "medicare_advantage", "", 1.10, 0.36),
    Payer("MA-LAKEVIEW", "medicare_advantage", "", 0.80, 0.38),
    Payer("MCD-CA", "medicaid", "CA", 0.85, 0.26),
    Payer("MCD-TX", "medicaid", "TX", 1.00, 0.25),
    Payer("MCD-FL", "medicaid", "FL", 0.95, 0.24),
    Payer("MCD-NY", "medicaid", "NY", 0.80, 0.28),
    Payer("MCD-OH", "medicaid", "OH", 0.90, 0.25),
    Payer("COM-ATLAS", "commercial", "", 1.00, 0.55),
    Payer("COM-PINNACLE", "commercial", "", 0.70, 0.60),
    Payer("COM-HARBOR", "commercial", "", 1.25, 0.50),
)
#: per plan type, how strongly the payer pursues each cause (multiplies the payer's audit intensity)
CAUSE_EMPHASIS: dict[str, dict[str, float]] = {
    "medicare": {"documentation": 1.3, "medical_necessity": 1.2},
    "medicare_advantage": {"procedure_coding": 1.4, "documentation": 1.1},
    "medicaid": {"eligibility": 1.5, "duplicate": 1.1},
    "commercial": {"bundling": 1.4, "units": 1.2, "documentation": 0.8},
}
