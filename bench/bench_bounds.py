"""Benchmark: what an oversized request costs the service before it is refused (issue 11, section 3).

    python bench/bench_bounds.py [--repeat 5]

For each oversized body (a claim with 1,000,000 diagnosis codes as an array and as 'a;b' text, 100,000
lines, a batch of 25,000 claims; all under the 16 MiB body limit) and for the example claim: the body size,
and the time to parse it (orjson, as ``serving.service.read_json``) and to check it with the request model
(``ScoreRequest`` / ``BatchRequest``, as ``RecoupService.score_one`` / ``score_many``), min and max over
``--repeat`` runs, with the error the client gets. No model needed: this is the part of a request that
runs before scoring.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from serving.schemas import (
    EXAMPLE_CLAIM,
    EXAMPLE_SCORE_REQUEST,
    BatchRequest,
    ScoreRequest,  # noqa: E402
    pydantic_fields,
)


def bodies() -> dict[str, tuple[type, bytes]]:
    codes = ["E119"] * 1_000_000
    line = EXAMPLE_CLAIM["lines"][1]
    return {
        "example claim": (ScoreRequest, orjson.dumps(EXAMPLE_SCORE_REQUEST)),
        "1,000,000 codes (array)": (ScoreRequest, orjson.dumps({"claim": {**EXAMPLE_CLAIM, "diagnosis_codes": codes}})),
        "1,000,000 codes ('a;b')": (
            ScoreRequest,
            orjson.dumps({"claim": {**EXAMPLE_CLAIM, "diagnosis_codes": ";".join(codes)}}),
        ),
        "100,000 lines": (ScoreRequest, orjson.dumps({"claim": {**EXAMPLE_CLAIM, "lines": [line] * 100_000}})),
        "25,000 claims": (BatchRequest, orjson.dumps({"claims": [EXAMPLE_CLAIM] * 25_000})),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    out = {}
    for name, (model, raw) in bodies().items():
        parse, check, error = [], [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            body = orjson.loads(raw)
            t1 = time.perf_counter()
            try:
                model.model_validate(body)
            except ValidationError as exc:
                error = pydantic_fields(exc, "")[0]
            parse.append(t1 - t0)
            check.append(time.perf_counter() - t1)
        ms = {k: (round(min(v) * 1e3, 1), round(max(v) * 1e3, 1)) for k, v in (("parse", parse), ("check", check))}
        out[name] = {"bytes": len(raw), "parse_ms": ms["parse"], "check_ms": ms["check"], "error": error}
        print(
            f"{name:26s} {len(raw) / 1e6:6.2f} MB  parse {ms['parse'][0]:7.1f}-{ms['parse'][1]:.1f} ms  "
            f"check {ms['check'][0]:7.1f}-{ms['check'][1]:.1f} ms  "
            f"{'refused: ' + error['field'] + ' (' + error['message'] + ')' if error else 'accepted'}"
        )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
