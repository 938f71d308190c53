"""Vital signs in the clinic's units. Records store SI (kg, cm, °C); a clinic reads and types them in its
unit system (a per-clinic setting, `Tenant.unit_system`): metric, or US customary (lb, in, °F). Every
conversion and every unit label is here, so forms, pages, the provider's share and the PDF agree."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

METRIC = "metric"
US = "us"
UNIT_SYSTEMS = {METRIC: "Metric (kg, cm, °C)", US: "US (lb, in, °F)"}

# The US time zones of the tz database's zone.tab: a clinic in one of them starts with US units.
US_TIME_ZONES = frozenset(
    (
        "America/Adak",
        "America/Anchorage",
        "America/Boise",
        "America/Chicago",
        "America/Denver",
        "America/Detroit",
        "America/Indiana/Indianapolis",
        "America/Indiana/Knox",
        "America/Indiana/Marengo",
        "America/Indiana/Petersburg",
        "America/Indiana/Tell_City",
        "America/Indiana/Vevay",
        "America/Indiana/Vincennes",
        "America/Indiana/Winamac",
        "America/Juneau",
        "America/Kentucky/Louisville",
        "America/Kentucky/Monticello",
        "America/Los_Angeles",
        "America/Menominee",
        "America/Metlakatla",
        "America/New_York",
        "America/Nome",
        "America/North_Dakota/Beulah",
        "America/North_Dakota/Center",
        "America/North_Dakota/New_Salem",
        "America/Phoenix",
        "America/Sitka",
        "America/Yakutat",
        "Pacific/Honolulu",
        "US/Alaska",
        "US/Arizona",
        "US/Central",
        "US/Eastern",
        "US/Hawaii",
        "US/Mountain",
        "US/Pacific",
    )
)

POUNDS_PER_KG = 1 / 0.45359237  # the international pound, exactly 0.45359237 kg
INCHES_PER_CM = 1 / 2.54  # the international inch, exactly 2.54 cm
DISPLAY_DECIMALS = 1


@dataclass(frozen=True)
class Quantity:
    """One vital sign kept in SI: its record field, and its unit in each system."""

    field: str  # the MedicalRecord column, in SI
    label: str
    units: dict[str, str]


VITALS = {
    "weight": Quantity("weight_kg", "Weight", {METRIC: "kg", US: "lb"}),
    "height": Quantity("height_cm", "Height", {METRIC: "cm", US: "in"}),
    "temperature": Quantity("temperature_c", "Temperature", {METRIC: "°C", US: "°F"}),
}


def default_unit_system(timezone: str | None) -> str:
    """What a new clinic starts with: US units in a US time zone, metric elsewhere."""
    return US if timezone in US_TIME_ZONES else METRIC


def unit(kind: str, system: str) -> str:
    """The unit `kind` ("weight", "height", "temperature") is typed and shown in, in `system`."""
    return VITALS[kind].units[system if system in UNIT_SYSTEMS else METRIC]


def from_si(kind: str, value: float | None, system: str) -> float | None:
    """A stored SI value in the clinic's unit (not rounded)."""
    if value is None or system != US:
        return value
    if kind == "weight":
        return value * POUNDS_PER_KG
    if kind == "height":
        return value * INCHES_PER_CM
    return value * 9 / 5 + 32


def to_si(kind: str, value: float | None, system: str) -> float | None:
    """A value typed in the clinic's unit, in SI for storing (rounded to what the columns hold: 0.01)."""
    if value is None:
        return None
    if system == US:
        if kind == "weight":
            value = value / POUNDS_PER_KG
        elif kind == "height":
            value = value / INCHES_PER_CM
        else:
            value = (value - 32) * 5 / 9
    return _rounded(value, 2)


def shown(kind: str, value: float | None, system: str) -> float | None:
    """A stored SI value as the clinic reads it: in its unit, to one decimal."""
    converted = from_si(kind, value, system)
    return None if converted is None else _rounded(converted, DISPLAY_DECIMALS)


def vital_text(kind: str, value: float | None, system: str) -> str:
    """ "154.3 lb", "70 kg", "98.6 °F"; empty for no value."""
    number = shown(kind, value, system)
    if number is None:
        return ""
    return f"{number:g} {unit(kind, system)}"


def _rounded(value: float, decimals: int) -> float:
    # Halves up, as people round: 0.05 → 0.1 (Python's round() would give the even neighbour).
    return float(Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))
