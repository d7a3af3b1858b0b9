"""Generate the detector's labelled benchmark data (offline, deterministic).

    pip install --target /tmp/fk faker      # generation-time only, not a project dependency
    PYTHONPATH=/tmp/fk .venv/bin/python bench/detector_data/generate.py

Writes ``train.jsonl`` (the pool the rules were tuned on, seed 1) and ``test.jsonl``
(held-out templates, other name locales, other medical terms, seed 2) and ``final.jsonl``
(templates written last, never inspected; seed 3) beside this file.
Each line: {"id", "split", "template", "text", "entities": [{"type", "start", "end"}]}.
"""

from __future__ import annotations

import json
import random
import re
import string
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from templates import NEGATIVE, POSITIVE
from values import ValueFactory

HERE = Path(__file__).resolve().parent
PER_POSITIVE = 40
PER_NEGATIVE = 25

# Slots whose label is not their own name.
LABELS = {"CONDITION": "MEDICAL_CONDITION", "MEDICATION": "MEDICAL_CONDITION",
          "PROCEDURE": "MEDICAL_CONDITION"}  # fmt: skip

TERMS = {
    # Tuning pool: terms from the detector's own word list.
    "train": {
        "cond": ["diabetes", "hypertension", "breast cancer", "depression", "asthma", "HIV",
                 "bipolar disorder", "epilepsy", "COPD", "multiple sclerosis"],
        "med": ["metformin", "lisinopril", "sertraline", "insulin", "warfarin", "Adderall",
                "prednisone", "oxycodone", "Ozempic", "lithium"],
        "proc": ["chemotherapy", "dialysis", "a colonoscopy", "knee replacement", "an MRI",
                 "a biopsy", "bypass surgery", "IVF"],
    },
    # Held-out pool: half the terms are not in the detector's word list.
    "final": {
        "cond": ["rheumatoid arthritis", "Addison's disease", "bronchiectasis", "anemia",
                 "atrial fibrillation", "endometriosis", "gout", "cystic fibrosis"],
        "med": ["clopidogrel", "carvedilol", "valsartan", "Humira", "tamsulosin",
                "escitalopram", "apixaban", "budesonide"],
        "proc": ["a cholecystectomy", "a cardiac ablation", "cataract surgery",
                 "a bone marrow biopsy", "an ERCP", "physiotherapy"],
    },
    "test": {
        "cond": ["pulmonary embolism", "Graves' disease", "deep vein thrombosis", "lupus",
                 "Hashimoto's thyroiditis", "chronic kidney disease", "shingles", "sarcoidosis",
                 "ankylosing spondylitis", "schizophrenia"],
        "med": ["amiodarone", "Eliquis", "levetiracetam", "gabapentin", "spironolactone",
                "quetiapine", "methotrexate", "Jardiance"],
        "proc": ["a hip arthroplasty", "a thyroidectomy", "radiotherapy", "an angioplasty",
                 "a lumbar puncture", "hemodialysis", "a skin graft"],
    },
}  # fmt: skip

PUBLIC = {
    "final": ["Ada Lovelace", "Simon Bolivar", "Catherine the Great", "Nikola Tesla",
              "Toni Morrison", "Ibn Battuta", "Hannah Arendt"],
    "train": ["Abraham Lincoln", "Albert Einstein", "Marie Curie", "Winston Churchill",
              "Isaac Newton", "Nelson Mandela", "Charles Darwin"],
    "test": ["Genghis Khan", "Queen Victoria", "Thomas Aquinas", "Frida Kahlo",
             "Louis Armstrong", "Alan Turing", "Rosalind Franklin", "Johannes Gutenberg"],
}  # fmt: skip

LOCALES = {
    "final": ["en_US", "en_IE", "fr_FR", "it_IT", "pl_PL", "es_MX"],
    "train": ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT"],
    "test": ["en_US", "en_GB", "nl_NL", "pl_PL", "pt_BR", "de_DE"],
}


def _makers(v: ValueFactory, split: str) -> dict[str, Callable[[], str]]:
    r = v.r
    t = TERMS[split]
    return {
        "PERSON": v.person, "US_SSN": v.ssn, "US_ITIN": v.itin, "CREDIT_CARD": v.credit_card,
        "IBAN_CODE": v.iban, "UK_NHS": v.nhs, "UK_NINO": v.nino, "US_PASSPORT": v.passport,
        "US_BANK_NUMBER": v.bank_account, "ABA_ROUTING_NUMBER": v.aba, "EU_VAT": v.vat,
        "IP_ADDRESS": lambda: v.ipv6() if r.random() < 0.25 else v.ipv4(),
        "EMAIL_ADDRESS": v.email, "PHONE_NUMBER": v.phone, "MEDICAL_RECORD_NUMBER": v.mrn,
        "DATE_OF_BIRTH": v.dob, "HEALTH_INSURANCE_ID": v.insurance_id,
        "CONDITION": lambda: r.choice(t["cond"]), "MEDICATION": lambda: r.choice(t["med"]),
        "PROCEDURE": lambda: r.choice(t["proc"]), "STREET_ADDRESS": v.street_address,
        "API_KEY": v.api_key, "PRIVATE_KEY": v.private_key, "PASSWORD": v.password,
        # unlabelled fillers and hard negatives
        "first": v.first_name, "city": v.city, "num": lambda: str(r.randint(2, 9999)),
        "public": lambda: r.choice(PUBLIC[split]), "cond": lambda: r.choice(t["cond"]),
        "med": lambda: r.choice(t["med"]), "year": lambda: str(r.randint(1800, 1990)),
        "order": lambda: r.choice(["", "ORD-", "INV-", "A"]) + v.digits(r.randint(6, 12)),
        "bad_card": v.bad_card, "bad_iban": lambda: v.iban(valid=False),
        "bad_nhs": lambda: v.nhs(valid=False),
        "bad_ssn": lambda: f"{r.choice(['000', '666', '912'])}-{r.randint(0, 49):02d}-"
        + v.digits(4),
        "ver": lambda: f"{r.randint(1, 4)}.{r.randint(0, 30)}.{r.randint(0, 9)}",
        "date": lambda: f"{r.randint(1, 28)}/{r.randint(1, 12)}/{r.randint(2000, 2030)}",
        "sha": lambda: "".join(r.choice("0123456789abcdef") for _ in range(40)),
        "uuid": lambda: "-".join(
            "".join(r.choice(string.hexdigits.lower()[:16]) for _ in range(n))
            for n in (8, 4, 4, 4, 12)
        ),
    }  # fmt: skip


def fill(template: str, makers: dict[str, Callable[[], str]]) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    pos = 0
    length = 0
    for m in re.finditer(r"\{([A-Za-z_]+)\}", template):
        lit = template[pos : m.start()]
        out.append(lit)
        length += len(lit)
        slot = m.group(1)
        value = makers[slot]()
        if slot.isupper():
            entities.append({"type": LABELS.get(slot, slot), "start": length,
                             "end": length + len(value)})  # fmt: skip
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), entities


def generate(split: str, seed: int) -> list[dict[str, Any]]:
    from faker import Faker

    rnd = random.Random(seed)
    # Addresses always come from en_US, en_GB and de_DE; names from the split's locales.
    faker = Faker(sorted(set(LOCALES[split]) | {"en_US", "en_GB", "de_DE"}))
    faker.seed_instance(seed)
    makers = _makers(ValueFactory(rnd, faker, LOCALES[split]), split)
    rows: list[dict[str, Any]] = []
    for kind, pool, n in (
        ("pos", POSITIVE[split], PER_POSITIVE),
        ("neg", NEGATIVE[split], PER_NEGATIVE),
    ):
        for ti, template in enumerate(pool):
            for _ in range(n):
                text, ents = fill(template, makers)
                row_id = f"{split}-{kind}{ti}-{len(rows)}"
                rows.append({"id": row_id, "split": split, "template": f"{kind}{ti}",
                             "text": text, "entities": ents})  # fmt: skip
    return rows


def main() -> None:
    for split, seed in (("train", 1), ("test", 2), ("final", 3)):
        rows = generate(split, seed)
        path = HERE / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{split}: {len(rows)} rows -> {path}")


if __name__ == "__main__":
    main()
