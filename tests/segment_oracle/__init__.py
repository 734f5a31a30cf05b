"""An independent model of the sample retailer as of T = 2026-11-01, for the segment acceptance
tests (tests/test_segment_commands.py).

Plain Python over the sample's CSV files and `expected_profiles.jsonl`; it never imports the code
under test (`nlp`, `profile_store`), so it can disagree with it.
"""

from tests.segment_oracle.model import (
    SAMPLE,
    STORES,
    Orders,
    Person,
    Sample,
    T,
    identity_key,
    load_sample,
)
from tests.segment_oracle.windows import (
    DEFAULT,
    LAST_MONTH,
    LAST_WEEK,
    LAST_YEAR,
    LAST_YEAR_D11,
    SHUANG11,
    SIX18,
    THIS_MONTH,
    THIS_WEEK,
    THIS_YEAR,
    Window,
    days,
)

__all__ = [
    "DEFAULT",
    "LAST_MONTH",
    "LAST_WEEK",
    "LAST_YEAR",
    "LAST_YEAR_D11",
    "SAMPLE",
    "SHUANG11",
    "SIX18",
    "STORES",
    "THIS_MONTH",
    "THIS_WEEK",
    "THIS_YEAR",
    "Orders",
    "Person",
    "Sample",
    "T",
    "Window",
    "days",
    "identity_key",
    "load_sample",
]
