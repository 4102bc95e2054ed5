"""Hypothesis strategies for device frames, and the independent oracle that judges them.

Each generated reading carries the verdict the contract gives it, decided by
how it was generated (a quantity drawn as "too many decimals" is invalid),
not by calling the parser, so a test can compare the server's verdict with it.
Inputs that once tripped bugs (JSON nested thousands deep, lone surrogate
escapes, timestamps in year 1) have tests of their own in the test modules.
"""

import json
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

MAX_FUTURE = timedelta(minutes=5)
MAX_FRAME_BYTES = 256 * 1024
MAX_BATCH = 1000
FRAME_CODES = {"invalid_json", "invalid_message", "too_large"}
# too_old and usage_limit are Meterline's extensions of the contract (README).
READING_CODES = {"invalid_reading", "future_timestamp", "register_decreased", "too_old"}
READING_CODES |= {"usage_limit"}
CONTRACT_CODES = FRAME_CODES | READING_CODES
MISSING = object()  # a field left out of the reading altogether


def weighted(*options: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """One of the strategies, each as often as its weight (one_of drops repeats)."""
    return st.sampled_from([s for weight, s in options for _ in range(weight)]).flatmap(
        lambda strategy: strategy
    )


# Characters fit for text a device could send: no surrogates (a WebSocket text
# frame is UTF-8), everything else including controls, RTL marks and emoji.
ODD_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


# --- quantities ---------------------------------------------------------------


@dataclass(frozen=True)
class Amount:
    """A quantity (or value) as sent, and what the contract makes of it.

    verdict: "ok" (charged as `number`), "invalid", or "either" (the contract
    does not say; if accepted it must be charged as `number`).
    """

    raw: Any
    verdict: str
    number: Decimal | None = None


def _integer_digits(number: Decimal) -> int:
    whole = abs(int(number))
    return len(str(whole)) if whole else 0


_any_coefficient = st.one_of(st.integers(0, 1000), st.integers(0, 10**25))
_any_exponent = st.one_of(st.integers(-9, 0), st.integers(-12, 22))


@st.composite
def decimal_amounts(draw, coefficients=_any_coefficient, exponents=_any_exponent) -> Amount:
    """A decimal string, plain or in exponent notation.

    Valid iff plain ("123.45": ASCII digits, an optional fraction) with at most
    15 digits before the point (leading zeros aside) and 9 after.
    """
    coefficient = draw(coefficients)
    exponent = draw(exponents)
    digits = tuple(int(d) for d in str(coefficient))
    number = Decimal((0, digits, exponent))
    form = draw(st.sampled_from(["plain", "E", "e"]))
    if form == "plain":
        raw = f"{number:f}"
    else:
        raw = f"{coefficient}{form}{exponent:+d}" if form == "E" else f"{coefficient}e{exponent}"
    whole, _, fraction = raw.partition(".")
    fits = form == "plain" and len(fraction) <= 9 and len(whole.lstrip("0")) <= 15
    return Amount(raw, "ok" if fits else "invalid", number)


@st.composite
def negative_amounts(draw) -> Amount:
    """A sign is never part of a quantity, not even on zero."""
    return Amount("-" + draw(decimal_amounts()).raw, "invalid")


INVALID_STRINGS = [
    "",
    " ",
    "NaN",
    "nan",
    "-NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "inf",
    "1e400",
    "1E-400",
    "9" * 16,
    "0." + "0" * 9 + "1",
    "1.0000000000",
    "abc",
    "0x10",
    "1,5",
    "1.2.3",
    "1e",
    "+",
    ".",
    "--1",
    "1e+",
    "\u066b",  # Arabic decimal separator alone
]
# Decimal() reads these, but they are not plain decimal strings: refused.
# (Arabic-Indic "12" and a fullwidth "1" among them.)
LENIENT_STRINGS = ["+1", " 1", "2 ", "\t3\n", "1_000", "\u0661\u0662", "\uff11", "+0.5"]

# Mostly within 15 + 9 digits (the verdict says when not).
valid_amounts = decimal_amounts(st.integers(0, 10**12), st.integers(-9, 2))

amounts = weighted(
    (4, decimal_amounts()),
    (1, negative_amounts()),
    (1, st.sampled_from(INVALID_STRINGS).map(lambda raw: Amount(raw, "invalid"))),
    (
        1,
        st.sampled_from(LENIENT_STRINGS).map(lambda raw: Amount(raw, "invalid")),
    ),
    (
        1,
        st.text(st.characters(exclude_categories=["Cs", "Nd"]), max_size=12).map(
            lambda raw: Amount(raw, "invalid")
        ),
    ),
    (
        1,
        st.one_of(
            st.integers(-(10**30), 10**30),
            st.floats(allow_nan=False, allow_infinity=False),
            st.none(),
            st.booleans(),
            st.lists(st.integers(), max_size=2),
            st.just({"amount": "1"}),
            st.just(MISSING),
        ).map(lambda raw: Amount(raw, "invalid")),
    ),
)


# --- timestamps ---------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """A timestamp spec, rendered relative to the clock when the frame is sent.

    verdict: "ok", "future" (more than 5 minutes ahead), "invalid", or "old": well
    formed but more than METERLINE_READING_MAX_AGE_DAYS before the account (made just
    before the frame is sent) was created, so rating refuses it as too_old.
    """

    verdict: str
    offset_s: int = 0  # from now
    utc_offset_min: int | None = 0  # None: naive
    style: str = "isoformat"
    fixed: Any = None  # a literal value instead of a rendered one, when `literal`
    literal: bool = False

    def render(self, now: datetime) -> Any:
        if self.literal:
            return self.fixed
        zone = (
            None
            if self.utc_offset_min is None
            else dt_timezone(timedelta(minutes=self.utc_offset_min))
        )
        moment = now + timedelta(seconds=self.offset_s)
        local = moment.astimezone(zone) if zone else moment.replace(tzinfo=None)
        if self.style == "Z":
            return local.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return local.isoformat(timespec=self.style if self.style != "isoformat" else "auto")


TEN_YEARS = 10 * 365 * 86400
# The account is made just before its frames: an hour either side of the 35-day
# buffer keeps the verdict clear of how long the test takes.
OK_AGE = 35 * 86400 - 3600
OLD_AGE = 35 * 86400 + 3600
_styles = st.sampled_from(["isoformat", "Z", "seconds", "minutes", "milliseconds"])
_utc_offsets = st.integers(-14 * 60, 14 * 60)


def _aware(offsets, verdict):
    return st.builds(Stamp, st.just(verdict), offsets, _utc_offsets, _styles)


FIXED_STAMPS = [
    ("9999-12-31T23:59:59Z", "future"),
    ("9999-12-31T23:59:59-14:00", "future"),
    ("1970-01-01T00:00:00Z", "invalid"),  # before 2000: a device whose clock is not set
    ("2000-01-01T00:00:00Z", "old"),
    ("2000-02-29T12:00:00+05:30", "old"),
    ("2026-02-30T00:00:00Z", "invalid"),
    ("2026-11-23T25:00:00Z", "invalid"),
    ("2026-11-23T18:30:00+24:00", "invalid"),
    ("2026-11-23", "invalid"),
    ("2026-11-23T18:30:00", "invalid"),
    ("2026-13-01T00:00:00Z", "invalid"),
    ("", "invalid"),
    ("now", "invalid"),
    ("yesterday", "invalid"),
]

stamps = st.one_of(
    # Keep clear of the 5-minute boundary: the server's clock moves on meanwhile.
    _aware(st.integers(-OK_AGE, 290), "ok"),
    _aware(st.integers(-TEN_YEARS, -OLD_AGE), "old"),
    _aware(st.integers(-600, 290), "ok"),
    # 400, not 301: a timestamp written to the minute loses up to 59 s.
    _aware(st.integers(400, TEN_YEARS), "future"),
    st.builds(Stamp, st.just("invalid"), st.integers(-TEN_YEARS, TEN_YEARS), st.none()),
    st.sampled_from(FIXED_STAMPS).map(lambda pair: Stamp(pair[1], fixed=pair[0], literal=True)),
    # No digits, so never a date by accident.
    st.text(st.characters(exclude_categories=["Cs", "Nd"]), max_size=30).map(
        lambda text: Stamp("invalid", fixed=text, literal=True)
    ),
    st.one_of(
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.none(),
        st.booleans(),
        st.just([2026, 11, 23]),
        st.just(MISSING),
    ).map(lambda value: Stamp("invalid", fixed=value, literal=True)),
)


# --- readings and frames ------------------------------------------------------


@dataclass(frozen=True)
class IdSpec:
    raw: Any
    valid: bool


ids = st.one_of(
    st.sampled_from(["a", "b", "r-1"]).map(lambda i: IdSpec(i, True)),  # duplicates
    # Valid iff free of control characters (Cc): NUL cannot be stored, the rest is noise.
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64).map(
        lambda i: IdSpec(i, not any(unicodedata.category(c) == "Cc" for c in i))
    ),
    st.integers(1, 64).map(lambda n: IdSpec("x" * n, True)),
    st.integers(65, 100).map(lambda n: IdSpec("y" * n, False)),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=65, max_size=90).map(
        lambda i: IdSpec(i, False)
    ),
    st.sampled_from(["", 0, 17, None, True, ["a"], {"id": "a"}, 1.5]).map(
        lambda i: IdSpec(i, False)
    ),
    st.just(IdSpec(MISSING, False)),
)


@dataclass(frozen=True)
class ReadingSpec:
    """One reading to send (as a JSON object, or `not_object` instead of one)."""

    id: IdSpec
    ts: Stamp
    amount: Amount
    amount_field: str = "quantity"  # "quantity" (delta) or "value" (cumulative)
    other: Any = MISSING  # a value for the other meter kind's field
    extra: dict = field(default_factory=dict)
    not_object: Any = MISSING

    def render(self, now: datetime) -> Any:
        if self.not_object is not MISSING:
            return self.not_object
        item = dict(self.extra)
        for name, value in (
            ("id", self.id.raw),
            ("ts", self.ts.render(now)),
            (self.amount_field, self.amount.raw),
            ("value" if self.amount_field == "quantity" else "quantity", self.other),
        ):
            if value is not MISSING:
                item[name] = value
        return item

    def verdict(self) -> tuple[str, str | None, set[str]]:
        """The contract's verdict before rating, as (verdict, error id, codes).

        verdict: "refused" (with the codes that may say so), "accepted" or "either".
        """
        if self.not_object is not MISSING or not self.id.valid:
            return ("refused", None, {"invalid_reading"})
        codes = set()
        if self.ts.verdict == "invalid":
            codes.add("invalid_reading")
        if self.ts.verdict == "future":
            codes.add("future_timestamp")
        if self.amount.verdict == "invalid" or self.other not in (MISSING, None):
            codes.add("invalid_reading")
        if codes:
            # Which of two problems is reported first the contract leaves open.
            return ("refused", self.id.raw, codes)
        if self.amount.verdict == "either":
            return ("either", self.id.raw, {"invalid_reading"})
        return ("accepted", self.id.raw, set())


extra_fields = st.dictionaries(
    st.sampled_from(["type", "unit", "note", "meter", "x"]),
    st.one_of(st.none(), st.integers(), ODD_TEXT),
    max_size=2,
)


valid_ids = st.one_of(
    st.sampled_from(["a", "b", "r-1"]),
    st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=64),
).map(lambda i: IdSpec(i, True))
valid_stamps = _aware(st.integers(-OK_AGE, 290), "ok")


def readings(field_name: str = "quantity", id_strategy=ids, valid_id_strategy=valid_ids):
    valid = st.builds(
        ReadingSpec, valid_id_strategy, valid_stamps, valid_amounts, st.just(field_name)
    )
    return weighted(
        (4, valid),
        (
            2,
            st.builds(
                ReadingSpec,
                id_strategy,
                stamps,
                amounts,
                st.just(field_name),
                st.sampled_from([MISSING, MISSING, None, "1"]),
                extra_fields,
            ),
        ),
        (
            1,
            st.builds(
                ReadingSpec,
                id_strategy,
                st.just(Stamp("ok", offset_s=-60)),
                amounts,
                st.just(field_name),
            ),
        ),
        (
            1,
            st.sampled_from([0, "r", None, [], ["a"], True]).map(
                lambda value: ReadingSpec(
                    IdSpec(MISSING, False), Stamp("ok"), Amount("1", "ok"), not_object=value
                )
            ),
        ),
    )


@dataclass(frozen=True)
class FrameSpec:
    """A whole frame: `shape` says how the readings are wrapped (or how it is broken)."""

    shape: str
    items: tuple[ReadingSpec, ...] = ()
    junk: Any = None

    def render(self, now: datetime) -> str:
        items = [item.render(now) for item in self.items]
        if self.shape == "reading":
            message = {**items[0], "type": "reading"} if isinstance(items[0], dict) else items[0]
        elif self.shape == "batch":
            message = {"type": "batch", "readings": items}
        elif self.shape == "bad_type":
            message = {**(items[0] if isinstance(items[0], dict) else {}), "type": self.junk}
        elif self.shape == "no_type":
            message = {"readings": items}
        elif self.shape == "bad_readings":
            message = {"type": "batch", "readings": self.junk}
        elif self.shape == "too_many":
            message = {"type": "batch", "readings": [{}] * (MAX_BATCH + 1)}
        elif self.shape == "not_object":
            message = self.junk
        else:
            raise AssertionError(self.shape)
        return json.dumps(message)

    def frame_error(self) -> str | None:
        """The frame-level error code the contract gives it, if any."""
        if self.shape == "reading" and self.items[0].not_object is not MISSING:
            return "invalid_message"
        if self.shape in ("bad_type", "no_type", "bad_readings", "not_object"):
            return "invalid_message"
        if self.shape == "too_many":
            return "too_large"
        return None

    def readings(self) -> tuple[ReadingSpec, ...]:
        return () if self.frame_error() else self.items


_scalars = st.one_of(st.none(), st.integers(), st.booleans(), ODD_TEXT)
_junk = st.one_of(_scalars, st.lists(st.integers(), max_size=2))
_not_a_type = _junk.filter(lambda value: value not in ("reading", "batch"))


def frames(field_name: str = "quantity", id_strategy=ids, valid_id_strategy=valid_ids):
    reading = readings(field_name, id_strategy, valid_id_strategy)
    some = st.lists(reading, min_size=1, max_size=6).map(tuple)
    one = reading.map(lambda r: (r,))
    return weighted(
        (2, st.builds(FrameSpec, st.just("reading"), one)),
        (4, st.builds(FrameSpec, st.just("batch"), some)),
        (1, st.just(FrameSpec("batch"))),
        (
            1,
            st.builds(
                FrameSpec,
                st.just("bad_type"),
                one,
                st.one_of(
                    st.sampled_from(["Reading", "BATCH", "ack", "", "readings"]), _not_a_type
                ),
            ),
        ),
        (1, st.builds(FrameSpec, st.just("no_type"), some)),
        (
            1,
            st.builds(
                FrameSpec,
                st.just("bad_readings"),
                st.just(()),
                st.one_of(st.dictionaries(ODD_TEXT, st.integers(), max_size=2), _scalars),
            ),
        ),
        (1, st.just(FrameSpec("too_many"))),
        (
            1,
            st.builds(
                FrameSpec,
                st.just("not_object"),
                st.just(()),
                st.one_of(_junk, st.lists(st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=1))),
            ),
        ),
    )


# --- raw frames: anything at all ----------------------------------------------


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and Infinity come out as the non-JSON literals
    | ODD_TEXT,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.one_of(ODD_TEXT, st.sampled_from(["type", "id", "ts"])), children)
    ),
    max_leaves=20,
)


def _nested(depth: int, inner: str) -> str:
    return '{"a":' * depth + inner + "}" * depth


@st.composite
def _near_valid_text(draw) -> str:
    text = draw(frames()).render(datetime.now(UTC))
    cut = draw(st.integers(0, len(text)))
    return draw(st.sampled_from([text, text[:cut], text[cut:], text + text, text.upper()]))


raw_texts = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=200),
    st.text(st.sampled_from('{}[]":,0123456789.eE-+ \\ntruefalsnul'), max_size=80),
    json_values.map(lambda value: json.dumps(value, allow_nan=True)),
    json_values.map(lambda value: json.dumps({"type": "batch", "readings": value})),
    json_values.map(lambda value: json.dumps({"type": "reading", **({"v": value})})),
    st.sampled_from(["NaN", "Infinity", "-Infinity", '{"type": NaN}', "[1e400]", "1e400"]),
    st.integers(1, 4000).map(lambda n: "9" * n),
    st.integers(4301, 6000).map(lambda n: '{"type": "reading", "quantity": ' + "9" * n + "}"),
    st.integers(1, 400).map(lambda depth: _nested(depth, "1")),
    st.integers(1, 400).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(MAX_FRAME_BYTES - 30, MAX_FRAME_BYTES + 100).map(
        lambda n: '{"type": "batch", "readings": [], "pad": "' + "p" * n + '"}'
    ),
    _near_valid_text(),
)
raw_frames = st.one_of(raw_texts, raw_texts.map(str.encode), st.binary(max_size=200))


def lenient_ids_unique(frame: FrameSpec, prefix: str = "lenient") -> FrameSpec:
    """The frame with each reading the contract is silent on under an id of its own.

    Then the server's verdict on it can be told apart from that on a
    neighbour sharing its id, whatever the verdict is.
    """
    items = tuple(
        replace(item, id=IdSpec(f"{prefix}-{index}", True))
        if item.verdict()[0] == "either"
        else item
        for index, item in enumerate(frame.items)
    )
    return replace(frame, items=items)
