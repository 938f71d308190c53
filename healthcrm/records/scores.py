"""Liver scores from a patient's latest labs: MELD, MELD-Na, MELD 3.0 and Child-Pugh.

Pure functions, no database and no Flask: the caller gathers the latest lab of each kind and the latest
record's assessment into a `LiverInputs`, and each score answers with a `ScoreResult` that carries its own
working (the labs used with their dates, what was missing, and which published bounds changed a value), so a
page can show it beside the number. Bad or missing data gives a score of None with the reason; nothing here
raises for it.

Sources:
- MELD: Kamath PS et al., Hepatology 2001;33:464–470, as adopted by UNOS in 2002 (Wiesner R et al.,
  Gastroenterology 2003;124:91–96).
- MELD-Na: OPTN Policy 9.1 (MELD score), in effect from 11 January 2016 (after Kim WR et al., N Engl J Med
  2008;359:1018–1026).
- MELD 3.0: Kim WR et al., "MELD 3.0: The Model for End-stage Liver Disease Updated for the Modern Era",
  Gastroenterology 2021;161:1887–1895.e4; OPTN allocation since July 2023.
- Child-Pugh: Pugh RNH et al., "Transection of the oesophagus for bleeding oesophageal varices", Br J Surg
  1973;60:646–649.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

# Lab bounds, in the units the formulas use (mg/dL, g/dL, mmol/L; INR has none).
LAB_FLOOR = 1.0  # bilirubin, INR and creatinine below this count as this
MELD_CREATININE_MAX_MG_DL = 4.0  # also the value used on dialysis (MELD, MELD-Na)
MELD_3_CREATININE_MAX_MG_DL = 3.0  # also the value used on dialysis (MELD 3.0)
SODIUM_MIN_MMOL_L = 125.0
SODIUM_MAX_MMOL_L = 137.0
ALBUMIN_MIN_G_DL = 1.5  # MELD 3.0 only
ALBUMIN_MAX_G_DL = 3.5  # MELD 3.0 only
MELD_MAX_POINTS = 40
# MELD-Na adds its sodium term only when the rounded MELD(i) is above this.
MELD_NA_SODIUM_TERM_ABOVE_POINTS = 11

# Child-Pugh: the two thresholds that split 1, 2 and 3 points; each band between them includes both ends.
CHILD_PUGH_BILIRUBIN_MG_DL = (2.0, 3.0)  # < 2 → 1, 2–3 → 2, > 3 → 3
CHILD_PUGH_ALBUMIN_G_DL = (2.8, 3.5)  # > 3.5 → 1, 2.8–3.5 → 2, < 2.8 → 3
CHILD_PUGH_INR = (1.7, 2.3)  # < 1.7 → 1, 1.7–2.3 → 2, > 2.3 → 3
CHILD_PUGH_ASCITES_POINTS = {"none": 1, "slight": 2, "moderate": 3}
CHILD_PUGH_ENCEPHALOPATHY_POINTS = {"none": 1, "grade_1_2": 2, "grade_3_4": 3}
# Each class with its highest total: 5–6 A, 7–9 B, 10–15 C.
CHILD_PUGH_CLASS_MAX_POINTS = (("A", 6), ("B", 9), ("C", 15))

# The units each lab is accepted in, and how many of that unit make one of the formula's unit (listed first).
LAB_UNITS: dict[str, dict[str, float]] = {
    "bilirubin": {"mg/dL": 1.0, "µmol/L": 17.1},
    "INR": {"": 1.0, "INR": 1.0, "ratio": 1.0},
    "creatinine": {"mg/dL": 1.0, "µmol/L": 88.4},
    "sodium": {"mmol/L": 1.0, "mEq/L": 1.0},
    "albumin": {"g/dL": 1.0, "g/L": 10.0},
}
# Converted values are rounded to this many decimals so float noise cannot move a value across a threshold
# (51.3 µmol/L / 17.1 is 2.9999999999999996 in floating point, and must score as 3.0 mg/dL).
CONVERTED_VALUE_DECIMALS = 6


@dataclass(frozen=True)
class LabValue:
    """One lab result as reported: its value, its unit and when the sample was taken."""

    value: float
    unit: str
    observed_at: datetime


@dataclass(frozen=True)
class Assessment:
    """A clinical finding as recorded at a visit (ascites "slight", say) and when that visit was."""

    value: str
    observed_at: datetime


@dataclass(frozen=True, kw_only=True)
class LiverInputs:
    """The latest value of each input the liver scores use; None where there is none.

    Lab fields are named for the unit the formulas use; a `LabValue` in another accepted unit (see
    `LAB_UNITS`) is converted. `ascites` is "none", "slight" or "moderate"; `encephalopathy` is "none",
    "grade_1_2" or "grade_3_4"; each is the latest visit that assessed it (an `Assessment`, with its date;
    a plain string is accepted undated), None when no visit did.

    With `as_of` and `max_age_days`, an input observed more than `max_age_days` before `as_of` is still used
    but named in the score's `stale` and in a note: the clinic decides how old is old.
    """

    bilirubin_mg_dl: LabValue | None = None
    inr: LabValue | None = None
    creatinine_mg_dl: LabValue | None = None
    sodium_mmol_l: LabValue | None = None
    albumin_g_dl: LabValue | None = None
    dialysis_twice_in_week: bool
    female: bool
    ascites: Assessment | str | None = None
    encephalopathy: Assessment | str | None = None
    as_of: datetime | None = None
    max_age_days: int | None = None


@dataclass(frozen=True)
class ScoreResult:
    """A score and its working.

    `value` is None when an input is missing or unusable; `missing` names those inputs and `notes` says why
    when the reason is not plain absence. `inputs` lists what the score used, labs as reported (with their
    dates). `notes` also records each bound or conversion that changed a value. `category` is the Child-Pugh
    class ("A", "B" or "C") and None for the MELD scores. `stale` names the inputs older than the clinic's
    limit (`LiverInputs.max_age_days`).
    """

    name: str
    value: int | None
    category: str | None = None
    inputs: list[tuple[str, LabValue | Assessment | str | bool]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)


def meld(inputs: LiverInputs) -> ScoreResult:
    """Original MELD as used by UNOS from 2002 until MELD-Na replaced it in 2016.

    MELD = 9.57 × ln(creatinine) + 3.78 × ln(bilirubin) + 11.2 × ln(INR) + 6.43 (mg/dL), which is UNOS's
    10 × (0.957 × ln(Cr) + 0.378 × ln(bilirubin) + 1.120 × ln(INR) + 0.643): Kamath's coefficients with the
    etiology term fixed at 0.643. Bilirubin, INR and creatinine below 1.0 are set to 1.0; creatinine above
    4.0 is set to 4.0, and so is creatinine for a patient dialysed at least twice (or on 24 hours of CVVHD)
    in the past week. As in the OPTN policy text, 0.957 × ln(Cr) + … + 0.643 is rounded to the tenth and
    multiplied by 10, which is rounding the score to the nearest whole number (halves up). The score is
    capped at 40, as UNOS does, so it runs from 6 to 40.
    """
    work = _Working("MELD", inputs)
    bilirubin = work.lab("bilirubin", inputs.bilirubin_mg_dl)
    inr = work.lab("INR", inputs.inr)
    creatinine = work.creatinine(inputs, MELD_CREATININE_MAX_MG_DL)
    if bilirubin is None or inr is None or creatinine is None:
        return work.result(None)
    score = _meld_i(work.floor("bilirubin", bilirubin), work.floor("INR", inr), creatinine)
    return work.result(work.capped(score))


def meld_na(inputs: LiverInputs) -> ScoreResult:
    """MELD-Na as in OPTN Policy 9.1 from January 2016 until MELD 3.0 replaced it in July 2023.

    MELD(i) = 0.957 × ln(Cr) + 0.378 × ln(bilirubin) + 1.120 × ln(INR) + 0.643, rounded to the tenth and
    multiplied by 10 (the policy's order, so MELD(i) is a whole number). If MELD(i) > 11,
    MELD = MELD(i) + 1.32 × (137 − Na) − [0.033 × MELD(i) × (137 − Na)]; otherwise MELD = MELD(i). The lab
    bounds are those of `meld`, and sodium is bounded to 125–137 mmol/L. The result is rounded to the nearest
    whole number (halves up), since the score is reported as one, and capped at 40. Sodium is required even
    when MELD(i) ≤ 11, as the policy requires it of every candidate.
    """
    work = _Working("MELD-Na", inputs)
    bilirubin = work.lab("bilirubin", inputs.bilirubin_mg_dl)
    inr = work.lab("INR", inputs.inr)
    creatinine = work.creatinine(inputs, MELD_CREATININE_MAX_MG_DL)
    sodium = work.lab("sodium", inputs.sodium_mmol_l)
    if bilirubin is None or inr is None or creatinine is None or sodium is None:
        return work.result(None)
    meld_i = _meld_i(work.floor("bilirubin", bilirubin), work.floor("INR", inr), creatinine)
    sodium = work.bounded("sodium", sodium, SODIUM_MIN_MMOL_L, SODIUM_MAX_MMOL_L, decimals=0)
    if meld_i <= MELD_NA_SODIUM_TERM_ABOVE_POINTS:
        work.notes.append(
            f"sodium term not applied: MELD(i) {meld_i} is not above {MELD_NA_SODIUM_TERM_ABOVE_POINTS}"
        )
        return work.result(work.capped(meld_i))
    below_137 = SODIUM_MAX_MMOL_L - sodium
    score = meld_i + 1.32 * below_137 - (0.033 * meld_i * below_137)
    return work.result(work.capped(_nearest_whole(score)))


def meld_3(inputs: LiverInputs) -> ScoreResult:
    """MELD 3.0 (Kim WR et al., Gastroenterology 2021), the OPTN allocation score since July 2023.

    MELD 3.0 = 1.33 × (female) + 4.56 × ln(bilirubin) + 0.82 × (137 − Na)
               − 0.24 × (137 − Na) × ln(bilirubin) + 9.09 × ln(INR) + 11.14 × ln(creatinine)
               + 1.85 × (3.5 − albumin) − 1.83 × (3.5 − albumin) × ln(creatinine) + 6
    in mg/dL, mmol/L and g/dL. Bilirubin, INR and creatinine below 1.0 are set to 1.0; creatinine is capped
    at 3.0 (not 4.0), and set to 3.0 on dialysis at least twice (or 24 hours of CVVHD) in the past week;
    sodium is bounded to 125–137 and albumin to 1.5–3.5. Rounded to the nearest whole number (halves up) and
    capped at 40: Kim et al. did not presume a cap, OPTN policy keeps 40. This is the adult form; OPTN gives
    candidates aged 12–17 the 1.33 whatever their sex, and age is not an input here.
    """
    work = _Working("MELD 3.0", inputs)
    bilirubin = work.lab("bilirubin", inputs.bilirubin_mg_dl)
    inr = work.lab("INR", inputs.inr)
    creatinine = work.creatinine(inputs, MELD_3_CREATININE_MAX_MG_DL)
    sodium = work.lab("sodium", inputs.sodium_mmol_l)
    albumin = work.lab("albumin", inputs.albumin_g_dl)
    female = work.flag("female", inputs.female)
    if (
        bilirubin is None
        or inr is None
        or creatinine is None
        or sodium is None
        or albumin is None
        or female is None
    ):
        return work.result(None)
    ln_bilirubin = math.log(work.floor("bilirubin", bilirubin))
    ln_inr = math.log(work.floor("INR", inr))
    ln_creatinine = math.log(creatinine)
    sodium = work.bounded("sodium", sodium, SODIUM_MIN_MMOL_L, SODIUM_MAX_MMOL_L, decimals=0)
    albumin = work.bounded("albumin", albumin, ALBUMIN_MIN_G_DL, ALBUMIN_MAX_G_DL, decimals=1)
    below_137 = SODIUM_MAX_MMOL_L - sodium
    below_3_5 = ALBUMIN_MAX_G_DL - albumin
    score = (
        1.33 * (1 if female else 0)
        + 4.56 * ln_bilirubin
        + 0.82 * below_137
        - 0.24 * below_137 * ln_bilirubin
        + 9.09 * ln_inr
        + 11.14 * ln_creatinine
        + 1.85 * below_3_5
        - 1.83 * below_3_5 * ln_creatinine
        + 6
    )
    return work.result(work.capped(_nearest_whole(score)))


def child_pugh(inputs: LiverInputs) -> ScoreResult:
    """Child-Pugh score (5–15) and class: A 5–6, B 7–9, C 10–15 (Pugh RNH et al., Br J Surg 1973).

    Points 1 / 2 / 3: bilirubin < 2 / 2–3 / > 3 mg/dL; albumin > 3.5 / 2.8–3.5 / < 2.8 g/dL;
    INR < 1.7 / 1.7–2.3 / > 2.3; ascites none / slight / moderate; encephalopathy none / grade 1–2 /
    grade 3–4. Each middle band includes both its ends (bilirubin 2.0 and 3.0 both score 2). Pugh graded
    clotting by prothrombin time prolonged 1–4 / 4–6 / > 6 seconds; the INR bands are the usual modern
    substitute, not Pugh's own.
    """
    work = _Working("Child-Pugh", inputs)
    bilirubin = work.lab("bilirubin", inputs.bilirubin_mg_dl)
    albumin = work.lab("albumin", inputs.albumin_g_dl)
    inr = work.lab("INR", inputs.inr)
    ascites = work.assessment("ascites", inputs.ascites, CHILD_PUGH_ASCITES_POINTS)
    encephalopathy = work.assessment(
        "encephalopathy", inputs.encephalopathy, CHILD_PUGH_ENCEPHALOPATHY_POINTS
    )
    if bilirubin is None or albumin is None or inr is None or ascites is None or encephalopathy is None:
        return work.result(None)
    points = {
        "bilirubin": _points_rising(bilirubin, CHILD_PUGH_BILIRUBIN_MG_DL),
        "albumin": _points_falling(albumin, CHILD_PUGH_ALBUMIN_G_DL),
        "INR": _points_rising(inr, CHILD_PUGH_INR),
        "ascites": ascites,
        "encephalopathy": encephalopathy,
    }
    total = sum(points.values())
    work.notes.append(
        "points: " + ", ".join(f"{name} {p}" for name, p in points.items()) + f" (total {total})"
    )
    category = next(name for name, highest in CHILD_PUGH_CLASS_MAX_POINTS if total <= highest)
    return work.result(total, category)


def all_scores(inputs: LiverInputs) -> list[ScoreResult]:
    """Every liver score, in the order the page shows them."""
    return [meld(inputs), meld_na(inputs), meld_3(inputs), child_pugh(inputs)]


def _meld_i(bilirubin: float, inr: float, creatinine: float) -> int:
    """MELD(i) from bounded labs in mg/dL: the OPTN formula rounded to the tenth, times 10."""
    meld_i = 0.957 * math.log(creatinine) + 0.378 * math.log(bilirubin) + 1.120 * math.log(inr) + 0.643
    return int(Decimal(repr(meld_i)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP) * 10)


def _nearest_whole(value: float) -> int:
    # Python's round() sends halves to the even neighbour; clinical scores round halves up.
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _points_rising(value: float, thresholds: tuple[float, float]) -> int:
    """1 below the lower threshold, 2 from the lower to the upper inclusive, 3 above the upper."""
    lower, upper = thresholds
    if value < lower:
        return 1
    return 2 if value <= upper else 3


def _points_falling(value: float, thresholds: tuple[float, float]) -> int:
    """1 above the upper threshold, 2 from the lower to the upper inclusive, 3 below the lower."""
    lower, upper = thresholds
    if value > upper:
        return 1
    return 2 if value >= lower else 3


def _number(value: float, min_decimals: int = 1) -> str:
    """A value for a note: two decimals at most, `min_decimals` at least."""
    text = f"{value:.2f}"
    while text.endswith("0") and len(text.partition(".")[2]) > min_decimals:
        text = text[:-1]
    return text.removesuffix(".")


class _Working:
    """What one score has used, lacked and adjusted so far; becomes its `ScoreResult`."""

    def __init__(self, name: str, given: LiverInputs | None = None) -> None:
        self.name = name
        self.inputs: list[tuple[str, LabValue | Assessment | str | bool]] = []
        self.missing: list[str] = []
        self.notes: list[str] = []
        self.stale: list[str] = []
        self.stale_ages: list[tuple[str, int]] = []
        self.as_of = given.as_of if given else None
        self.max_age_days = given.max_age_days if given else None

    def result(self, value: int | None, category: str | None = None) -> ScoreResult:
        notes = list(self.notes)
        if self.stale_ages:  # one line for all of them, not one per input
            ages = ", ".join(f"{name} {days} days" for name, days in self.stale_ages)
            notes.append(f"Older than {self.max_age_days} days: {ages}")
        return ScoreResult(self.name, value, category, self.inputs, self.missing, notes, self.stale)

    def used(self, name: str, given: LabValue | Assessment | str | bool) -> None:
        """Count `given` as the input `name`, noting when it is older than the clinic's limit."""
        self.inputs.append((name, given))
        observed = getattr(given, "observed_at", None)
        if observed is None or self.as_of is None or self.max_age_days is None:
            return
        age = self.as_of - observed
        if age > timedelta(days=self.max_age_days):
            self.stale.append(name)
            self.stale_ages.append((name, age.days))

    def lab(self, name: str, lab: LabValue | None) -> float | None:
        """The lab's value in the formula's unit, or None (and counted missing) if absent or unusable."""
        if lab is None:
            self.missing.append(name)
            return None
        try:
            value = float(lab.value)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            self.missing.append(name)
            self.notes.append(f"{name} value {lab.value!r} is not a measurement")
            return None
        units = LAB_UNITS[name]
        per_formula_unit = next(
            (per for unit, per in units.items() if _unit_key(unit) == _unit_key(lab.unit)), None
        )
        if per_formula_unit is None:
            self.missing.append(name)
            accepted = ", ".join(unit for unit in units if unit)
            self.notes.append(f"{name} unit {lab.unit!r} not recognised (expected {accepted})")
            return None
        self.used(name, lab)
        if per_formula_unit == 1.0:
            return value
        converted = round(value / per_formula_unit, CONVERTED_VALUE_DECIMALS)
        formula_unit = next(iter(units))
        self.notes.append(
            f"{name} {_number(value, 0)} {lab.unit} taken as {_number(converted)} {formula_unit}"
        )
        return converted

    def creatinine(self, inputs: LiverInputs, dialysis_value: float) -> float | None:
        """Creatinine for a MELD formula: `dialysis_value` on dialysis, else the lab floored at 1.0 and capped
        at `dialysis_value`."""
        on_dialysis = self.flag("dialysis", inputs.dialysis_twice_in_week)
        if on_dialysis is None:
            return None
        if on_dialysis:
            # The measured value is shown but not used: dialysis holds it down artificially.
            if inputs.creatinine_mg_dl is not None:
                self.used("creatinine", inputs.creatinine_mg_dl)
            self.notes.append(f"creatinine set to {dialysis_value:.1f} (dialysis)")
            return dialysis_value
        creatinine = self.lab("creatinine", inputs.creatinine_mg_dl)
        if creatinine is None:
            return None
        creatinine = self.floor("creatinine", creatinine)
        if creatinine > dialysis_value:
            self.notes.append(f"creatinine capped at {dialysis_value:.1f} (was {_number(creatinine)})")
            return dialysis_value
        return creatinine

    def flag(self, name: str, value: bool) -> bool | None:
        """A yes/no input, or None (and counted missing) if it is not a bool."""
        if not isinstance(value, bool):
            self.missing.append(name)
            return None
        self.inputs.append((name, value))
        return value

    def assessment(self, name: str, given: Assessment | str | None, points: dict[str, int]) -> int | None:
        """Child-Pugh points for a clinical assessment, or None (and counted missing) if absent or unknown."""
        value = given.value if isinstance(given, Assessment) else given
        if not value:
            self.missing.append(name)
            return None
        if value not in points:
            self.missing.append(name)
            self.notes.append(f"{name} {value!r} is not one of {', '.join(points)}")
            return None
        self.used(name, given)
        return points[value]

    def floor(self, name: str, value: float) -> float:
        if value < LAB_FLOOR:
            self.notes.append(f"{name} set to {LAB_FLOOR:.1f} (was {_number(value)})")
            return LAB_FLOOR
        return value

    def bounded(self, name: str, value: float, low: float, high: float, decimals: int) -> float:
        bound = min(max(value, low), high)
        if bound != value:
            self.notes.append(f"{name} bounded to {bound:.{decimals}f} (was {_number(value, decimals)})")
        return bound

    def capped(self, score: int) -> int:
        if score > MELD_MAX_POINTS:
            self.notes.append(f"score capped at {MELD_MAX_POINTS} (calculated {score})")
            return MELD_MAX_POINTS
        return score


def _unit_key(unit: str) -> str:
    """A unit compared without case, spaces or the choice of micro sign (µ, μ or u)."""
    return str(unit).replace("µ", "u").replace("μ", "u").replace(" ", "").casefold()
