"""Build the detector's first-name list from Faker's person providers (run once, offline).

Faker (MIT licence) takes its en_US names from US SSA baby-name and Census data (public
domain) and its other locales from public name statistics. The output is committed at
src/airlock/privacy/detector/_data/names.json, so neither Faker nor this script is a
runtime dependency. Locales nl_NL, pl_PL and pt_BR are deliberately left out: the
evaluation generator draws some names from them to measure recall on names the list
does not know.

Usage:
    pip install --target /tmp/fk faker
    PYTHONPATH=/tmp/fk python bench/detector_data/build_names.py
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

LOCALES = ("en_US", "en_GB", "en_IE", "de_DE", "fr_FR", "es_ES", "it_IT", "en_IN")

# First names that are also everyday words, places or months: a capitalised
# "Will"/"May"/"Paris" at a sentence start would otherwise look like a name.
AMBIGUOUS = {
    "April",
    "Art",
    "August",
    "Autumn",
    "Bill",
    "Brandy",
    "Brook",
    "Candy",
    "Carol",
    "Case",
    "Chance",
    "Chase",
    "Cherry",
    "Christian",
    "Crystal",
    "Dale",
    "Dawn",
    "Destiny",
    "Diamond",
    "Don",
    "Drew",
    "Earl",
    "Eve",
    "Faith",
    "Forest",
    "Frank",
    "Gay",
    "Gene",
    "Georgia",
    "Grace",
    "Guy",
    "Harmony",
    "Heath",
    "Heather",
    "Holly",
    "Hope",
    "Hunter",
    "Iris",
    "Ivy",
    "Jack",
    "Jade",
    "Jan",
    "Jasmine",
    "Jordan",
    "Joy",
    "June",
    "Justice",
    "Kent",
    "King",
    "Lane",
    "Lee",
    "Liberty",
    "Lily",
    "Mark",
    "Mason",
    "Max",
    "May",
    "Miles",
    "Misty",
    "Nick",
    "Olive",
    "Pat",
    "Patience",
    "Pearl",
    "Penny",
    "Rich",
    "River",
    "Rob",
    "Robin",
    "Rock",
    "Rose",
    "Ruby",
    "Sage",
    "Savannah",
    "Sky",
    "Skye",
    "Sterling",
    "Stone",
    "Sue",
    "Summer",
    "Sunny",
    "Tanner",
    "Ted",
    "Trinity",
    "Tyler",
    "Victoria",
    "Violet",
    "Wade",
    "Ward",
    "Will",
    "Willow",
    "Winter",
    "Young",
    "Paris",
    "London",
    "Dakota",
    "Carolina",
    "Florence",
    "Sydney",
    "Austin",
    "Charlotte",
    "Dallas",
    "Phoenix",
    "Virginia",
    "Madison",
    "Lincoln",
    "Washington",
    "Jackson",
    "Kennedy",
    "Jefferson",
    "Mercedes",
    "Porsche",
    "Angel",
    "Star",
    "Jesus",
    "God",
    "Allah",
    "Buddha",
}


def main() -> None:
    names: set[str] = set()
    for loc in LOCALES:
        prov = importlib.import_module(f"faker.providers.person.{loc}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            for n in getattr(prov, attr, ()):
                if n.isalpha() and n[0].isupper() and 3 <= len(n) <= 14:
                    names.add(n)
    names -= AMBIGUOUS
    out = Path(__file__).resolve().parents[2] / "src/airlock/privacy/detector/_data/names.json"
    out.write_text(
        json.dumps(
            {
                "_source": "Faker 40.x person providers (MIT licence), locales "
                + ", ".join(LOCALES)
                + "; built by bench/detector_data/build_names.py",
                "first_names": sorted(names),
            },
            ensure_ascii=False,
            indent=0,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"{len(names)} names -> {out}")


if __name__ == "__main__":
    main()
