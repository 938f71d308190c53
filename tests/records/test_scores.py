"""Liver scores against worked examples from the published formulas, their bounds, units and missing data."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthcrm.records.scores import (
    LabValue,
    LiverInputs,
    ScoreResult,
    all_scores,
    child_pugh,
    meld,
    meld_3,
    meld_na,
)

DRAWN = datetime(2026, 3, 2, 8, 30)


def lab(value: float, unit: str) -> LabValue:
    return LabValue(value, unit, DRAWN)


def patient(
    bilirubin: float | None = 1.0,
    inr: float | None = 1.0,
    creatinine: float | None = 1.0,
    sodium: float | None = 137.0,
    albumin: float | None = 3.5,
    *,
    dialysis: bool = False,
    female: bool = False,
    ascites: str | None = "none",
    encephalopathy: str | None = "none",
) -> LiverInputs:
    """Inputs in the formulas' own units; None leaves that lab out."""
    return LiverInputs(
        bilirubin_mg_dl=None if bilirubin is None else lab(bilirubin, "mg/dL"),
        inr=None if inr is None else lab(inr, ""),
        creatinine_mg_dl=None if creatinine is None else lab(creatinine, "mg/dL"),
        sodium_mmol_l=None if sodium is None else lab(sodium, "mmol/L"),
        albumin_g_dl=None if albumin is None else lab(albumin, "g/dL"),
        dialysis_twice_in_week=dialysis,
        female=female,
        ascites=ascites,
        encephalopathy=encephalopathy,
    )


# --- MELD (UNOS) ---


def test_meld_worked_example() -> None:
    # 3.78 × ln(2.0) + 11.2 × ln(1.5) + 9.57 × ln(1.2) + 6.43
    # = 3.78 × 0.69315 + 11.2 × 0.40547 + 9.57 × 0.18232 + 6.43
    # = 2.6201 + 4.5412 + 1.7448 + 6.43 = 15.336 → 15
    result = meld(patient(bilirubin=2.0, inr=1.5, creatinine=1.2))
    assert result.value == 15
    assert result.name == "MELD"
    assert result.category is None
    assert result.missing == []


def test_meld_sets_values_below_one_to_one() -> None:
    # All three at 1.0: every log is 0, leaving 6.43 → 6, the lowest MELD.
    result = meld(patient(bilirubin=0.4, inr=0.9, creatinine=0.6))
    assert result.value == 6
    assert "bilirubin set to 1.0 (was 0.4)" in result.notes
    assert "INR set to 1.0 (was 0.9)" in result.notes
    assert "creatinine set to 1.0 (was 0.6)" in result.notes


def test_meld_caps_creatinine_at_4() -> None:
    result = meld(patient(bilirubin=2.0, inr=1.5, creatinine=6.5))
    assert result.value == meld(patient(bilirubin=2.0, inr=1.5, creatinine=4.0)).value
    # 3.78 × 0.69315 + 11.2 × 0.40547 + 9.57 × ln(4) 13.2667 + 6.43 = 26.858 → 27
    assert result.value == 27
    assert "creatinine capped at 4.0 (was 6.5)" in result.notes


def test_meld_on_dialysis_uses_creatinine_4() -> None:
    result = meld(patient(bilirubin=2.0, inr=1.5, creatinine=1.1, dialysis=True))
    assert result.value == 27
    assert "creatinine set to 4.0 (dialysis)" in result.notes
    assert ("dialysis", True) in result.inputs


def test_meld_on_dialysis_needs_no_creatinine_lab() -> None:
    result = meld(patient(bilirubin=2.0, inr=1.5, creatinine=None, dialysis=True))
    assert result.value == 27
    assert result.missing == []


def test_meld_is_capped_at_40() -> None:
    # 3.78 × ln(40) 13.944 + 11.2 × ln(4) 15.526 + 9.57 × ln(4) 13.267 + 6.43 = 49.17 → 49 → 40
    result = meld(patient(bilirubin=40.0, inr=4.0, creatinine=4.0))
    assert result.value == 40
    assert "score capped at 40 (calculated 49)" in result.notes


# --- MELD-Na (OPTN 2016) ---


def test_meld_na_worked_example() -> None:
    # MELD(i) = 0.957 × ln(1.5) + 0.378 × ln(3.0) + 1.120 × ln(1.8) + 0.643
    #         = 0.38803 + 0.41528 + 0.65832 + 0.643 = 2.1046 → 2.1 → × 10 = 21
    # 21 > 11, so MELD = 21 + 1.32 × (137 − 128) − 0.033 × 21 × (137 − 128)
    #                  = 21 + 11.88 − 6.237 = 26.643 → 27
    result = meld_na(patient(bilirubin=3.0, inr=1.8, creatinine=1.5, sodium=128))
    assert result.value == 27
    assert result.name == "MELD-Na"


def test_meld_na_skips_sodium_term_when_meld_i_is_11_or_less() -> None:
    # MELD(i) = 1.120 × ln(1.1) + 0.643 = 0.7497 → 0.7 → 7; with the sodium term it would be 20.
    result = meld_na(patient(bilirubin=1.0, inr=1.1, creatinine=1.0, sodium=125))
    assert result.value == 7
    assert "sodium term not applied: MELD(i) 7 is not above 11" in result.notes


def test_meld_na_sodium_term_starts_above_11() -> None:
    # Creatinine 1.6: 0.957 × ln(1.6) + 0.643 = 1.0928 → 1.1 → MELD(i) 11, no sodium term.
    assert meld_na(patient(creatinine=1.6, sodium=125)).value == 11
    # Creatinine 1.7: 0.957 × ln(1.7) + 0.643 = 1.1508 → 1.2 → MELD(i) 12;
    # 12 + 1.32 × 12 − 0.033 × 12 × 12 = 12 + 15.84 − 4.752 = 23.088 → 23.
    assert meld_na(patient(creatinine=1.7, sodium=125)).value == 23


def test_meld_na_rounds_meld_i_to_the_tenth_before_comparing_with_11() -> None:
    # 0.957 × ln(1.65) + 0.643 = 1.1222: unrounded, 11.22 would be above 11; the policy rounds to 1.1 first.
    assert meld_na(patient(creatinine=1.65, sodium=125)).value == 11


@pytest.mark.parametrize(
    ("sodium", "bounded", "note"),
    [(120, 125, "sodium bounded to 125 (was 120)"), (141, 137, "sodium bounded to 137 (was 141)")],
)
def test_meld_na_bounds_sodium(sodium: float, bounded: float, note: str) -> None:
    result = meld_na(patient(bilirubin=3.0, inr=1.8, creatinine=1.5, sodium=sodium))
    assert result.value == meld_na(patient(bilirubin=3.0, inr=1.8, creatinine=1.5, sodium=bounded)).value
    assert note in result.notes


def test_meld_na_at_sodium_137_equals_meld_i() -> None:
    assert meld_na(patient(bilirubin=3.0, inr=1.8, creatinine=1.5, sodium=137)).value == 21


def test_meld_na_uses_creatinine_4_on_dialysis_and_caps_at_40() -> None:
    result = meld_na(patient(bilirubin=40.0, inr=4.0, creatinine=1.0, sodium=125, dialysis=True))
    assert result.value == 40
    assert "creatinine set to 4.0 (dialysis)" in result.notes
    assert any(note.startswith("score capped at 40") for note in result.notes)


# --- MELD 3.0 (Kim et al. 2021) ---


def test_meld_3_worked_example_and_female_term() -> None:
    # Bilirubin 2.0, INR 1.5, creatinine 1.2, sodium 130, albumin 3.0:
    #   4.56 × ln(2.0)              =  3.16075
    # + 0.82 × (137 − 130)          =  5.74
    # − 0.24 × 7 × ln(2.0)          = −1.16449
    # + 9.09 × ln(1.5)              =  3.68568
    # + 11.14 × ln(1.2)             =  2.03107
    # + 1.85 × (3.5 − 3.0)          =  0.925
    # − 1.83 × 0.5 × ln(1.2)        = −0.16683
    # + 6                           = 20.2112 → 20 for a man; + 1.33 = 21.5412 → 22 for a woman
    labs = {"bilirubin": 2.0, "inr": 1.5, "creatinine": 1.2, "sodium": 130, "albumin": 3.0}
    assert meld_3(patient(**labs, female=False)).value == 20
    assert meld_3(patient(**labs, female=True)).value == 22
    assert ("female", True) in meld_3(patient(**labs, female=True)).inputs


def test_meld_3_lowest_is_6() -> None:
    result = meld_3(patient(bilirubin=0.3, inr=0.9, creatinine=0.5, sodium=140, albumin=4.2))
    assert result.value == 6
    assert "albumin bounded to 3.5 (was 4.2)" in result.notes
    assert "sodium bounded to 137 (was 140)" in result.notes


def test_meld_3_caps_creatinine_at_3_not_4() -> None:
    # Creatinine 3.0: 11.14 × ln(3) = 12.2384 + 6 = 18.238 → 18 (other inputs normal).
    result = meld_3(patient(creatinine=3.6))
    assert result.value == meld_3(patient(creatinine=3.0)).value == 18
    assert "creatinine capped at 3.0 (was 3.6)" in result.notes
    assert meld_3(patient(creatinine=4.0)).value == 18


def test_meld_3_on_dialysis_uses_creatinine_3() -> None:
    result = meld_3(patient(creatinine=1.0, dialysis=True))
    assert result.value == 18
    assert "creatinine set to 3.0 (dialysis)" in result.notes


def test_meld_3_bounds_albumin_to_1_5() -> None:
    # Creatinine 3.0, albumin 1.5: 12.2384 + 1.85 × 2 − 1.83 × 2 × ln(3) 4.0209 + 6 = 17.918 → 18.
    result = meld_3(patient(creatinine=3.0, albumin=1.0))
    assert result.value == meld_3(patient(creatinine=3.0, albumin=1.5)).value == 18
    assert "albumin bounded to 1.5 (was 1.0)" in result.notes
    # Creatinine 1.0, albumin 0.5 taken as 1.5: 1.85 × 2 + 6 = 9.7 → 10
    # (unbounded it would be 1.85 × 3 + 6 = 11.55 → 12).
    assert meld_3(patient(albumin=0.5)).value == 10


def test_meld_3_bounds_sodium_to_125() -> None:
    # 0.82 × (137 − 125) + 6 = 15.84 → 16.
    result = meld_3(patient(sodium=118))
    assert result.value == meld_3(patient(sodium=125)).value == 16
    assert "sodium bounded to 125 (was 118)" in result.notes


def test_meld_3_is_capped_at_40() -> None:
    # Bilirubin 30, INR 3.5, creatinine 3.0, sodium 125, albumin 1.5, female: 46.19 → 46 → 40.
    result = meld_3(patient(bilirubin=30, inr=3.5, creatinine=3.0, sodium=125, albumin=1.5, female=True))
    assert result.value == 40
    assert "score capped at 40 (calculated 46)" in result.notes


# --- Child-Pugh (Pugh 1973) ---


def test_child_pugh_worked_example() -> None:
    # Bilirubin 2.5 → 2, albumin 3.0 → 2, INR 1.5 → 1, slight ascites → 2, no encephalopathy → 1: 8 → B.
    result = child_pugh(patient(bilirubin=2.5, albumin=3.0, inr=1.5, ascites="slight"))
    assert (result.value, result.category) == (8, "B")
    assert "points: bilirubin 2, albumin 2, INR 1, ascites 2, encephalopathy 1 (total 8)" in result.notes
    assert ("ascites", "slight") in result.inputs


@pytest.mark.parametrize(
    ("inputs", "total", "category"),
    [
        (patient(albumin=4.0), 5, "A"),
        (patient(albumin=4.0, ascites="slight"), 6, "A"),
        (patient(albumin=4.0, ascites="slight", encephalopathy="grade_1_2"), 7, "B"),
        (patient(bilirubin=2.5, albumin=3.0, ascites="slight", encephalopathy="grade_1_2"), 9, "B"),
        (patient(bilirubin=2.5, albumin=3.0, inr=2.0, ascites="slight", encephalopathy="grade_1_2"), 10, "C"),
        (patient(bilirubin=5, albumin=2.0, inr=3.0, ascites="moderate", encephalopathy="grade_3_4"), 15, "C"),
    ],
)
def test_child_pugh_class_boundaries(inputs: LiverInputs, total: int, category: str) -> None:
    result = child_pugh(inputs)
    assert (result.value, result.category) == (total, category)


@pytest.mark.parametrize(
    ("overrides", "points"),
    [
        ({"bilirubin": 1.99}, 1),
        ({"bilirubin": 2.0}, 2),
        ({"bilirubin": 3.0}, 2),
        ({"bilirubin": 3.01}, 3),
        ({"albumin": 3.51}, 1),
        ({"albumin": 3.5}, 2),
        ({"albumin": 2.8}, 2),
        ({"albumin": 2.79}, 3),
        ({"inr": 1.69}, 1),
        ({"inr": 1.7}, 2),
        ({"inr": 2.3}, 2),
        ({"inr": 2.31}, 3),
    ],
)
def test_child_pugh_point_boundaries(overrides: dict[str, float], points: int) -> None:
    # Everything else scores 1 (albumin 4.0 is above 3.5), so the total is 4 plus this input's points.
    inputs = patient(**{"albumin": 4.0, **overrides})
    assert child_pugh(inputs).value == 4 + points


def test_child_pugh_counts_bilirubin_in_umol_l_at_the_boundaries() -> None:
    # 34.2 µmol/L = 2.0 mg/dL and 51.3 µmol/L = 3.0 mg/dL: both in the 2-point band.
    for umol_l in (34.2, 51.3):
        inputs = LiverInputs(
            bilirubin_mg_dl=lab(umol_l, "µmol/L"),
            inr=lab(1.0, ""),
            albumin_g_dl=lab(40, "g/L"),
            dialysis_twice_in_week=False,
            female=False,
            ascites="none",
            encephalopathy="none",
        )
        assert child_pugh(inputs).value == 6, umol_l


def test_child_pugh_unknown_assessment_counts_missing() -> None:
    result = child_pugh(patient(ascites="severe", encephalopathy=None))
    assert result.value is None
    assert result.category is None
    assert result.missing == ["ascites", "encephalopathy"]
    assert "ascites 'severe' is not one of none, slight, moderate" in result.notes


# --- Units ---


@pytest.mark.parametrize("unit", ["µmol/L", "μmol/L", "umol/L", "UMOL/L"])
def test_bilirubin_in_umol_l(unit: str) -> None:
    inputs = LiverInputs(
        bilirubin_mg_dl=lab(34.2, unit),
        inr=lab(1.5, "INR"),
        creatinine_mg_dl=lab(1.2, "mg/dL"),
        dialysis_twice_in_week=False,
        female=False,
    )
    result = meld(inputs)
    assert result.value == 15
    assert f"bilirubin 34.2 {unit} taken as 2.0 mg/dL" in result.notes
    # The lab is shown as reported, with its date.
    assert ("bilirubin", lab(34.2, unit)) in result.inputs


def test_creatinine_albumin_and_sodium_in_other_units() -> None:
    # 106.08 µmol/L ÷ 88.4 = 1.2 mg/dL; 30 g/L ÷ 10 = 3.0 g/dL; mEq/L is mmol/L for sodium.
    inputs = LiverInputs(
        bilirubin_mg_dl=lab(2.0, "mg/dL"),
        inr=lab(1.5, "ratio"),
        creatinine_mg_dl=lab(106.08, "µmol/L"),
        sodium_mmol_l=lab(130, "mEq/L"),
        albumin_g_dl=lab(30, "g/L"),
        dialysis_twice_in_week=False,
        female=True,
    )
    assert meld(inputs).value == 15
    assert meld_3(inputs).value == 22
    assert "albumin 30 g/L taken as 3.0 g/dL" in meld_3(inputs).notes


def test_unknown_unit_counts_as_missing() -> None:
    inputs = LiverInputs(
        bilirubin_mg_dl=lab(2.0, "mg/dL"),
        inr=lab(1.5, ""),
        creatinine_mg_dl=lab(1.2, "mmol/L"),
        dialysis_twice_in_week=False,
        female=False,
    )
    result = meld(inputs)
    assert result.value is None
    assert result.missing == ["creatinine"]
    assert "creatinine unit 'mmol/L' not recognised (expected mg/dL, µmol/L)" in result.notes


# --- Missing and bad data ---


def test_no_labs_gives_no_scores() -> None:
    results = all_scores(LiverInputs(dialysis_twice_in_week=False, female=False))
    assert [r.name for r in results] == ["MELD", "MELD-Na", "MELD 3.0", "Child-Pugh"]
    assert [r.value for r in results] == [None, None, None, None]
    assert results[0].missing == ["bilirubin", "INR", "creatinine"]
    assert results[2].missing == ["bilirubin", "INR", "creatinine", "sodium", "albumin"]
    assert results[3].missing == ["bilirubin", "albumin", "INR", "ascites", "encephalopathy"]


def test_missing_albumin_stops_only_the_scores_that_need_it() -> None:
    values = {r.name: r for r in all_scores(patient(bilirubin=2.0, inr=1.5, creatinine=1.2, albumin=None))}
    assert values["MELD"].value == 15
    assert values["MELD-Na"].value == 15
    assert values["MELD 3.0"].value is None
    assert values["MELD 3.0"].missing == ["albumin"]
    assert values["Child-Pugh"].value is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 0.0, "high", None])
def test_unusable_lab_value_counts_as_missing(bad: object) -> None:
    inputs = LiverInputs(
        bilirubin_mg_dl=LabValue(bad, "mg/dL", DRAWN),  # type: ignore[arg-type]
        inr=lab(1.5, ""),
        creatinine_mg_dl=lab(1.2, "mg/dL"),
        dialysis_twice_in_week=False,
        female=False,
    )
    result = meld(inputs)
    assert result.value is None
    assert result.missing == ["bilirubin"]
    assert f"bilirubin value {bad!r} is not a measurement" in result.notes


def test_unknown_sex_counts_as_missing_for_meld_3() -> None:
    inputs = LiverInputs(
        bilirubin_mg_dl=lab(2.0, "mg/dL"),
        inr=lab(1.5, ""),
        creatinine_mg_dl=lab(1.2, "mg/dL"),
        sodium_mmol_l=lab(130, "mmol/L"),
        albumin_g_dl=lab(3.0, "g/dL"),
        dialysis_twice_in_week=False,
        female=None,  # type: ignore[arg-type]
    )
    assert meld_3(inputs).missing == ["female"]
    assert meld(inputs).value == 15


# --- Properties ---

BILIRUBIN = st.floats(min_value=0.1, max_value=80, allow_nan=False)
INR = st.floats(min_value=0.5, max_value=10, allow_nan=False)


@st.composite
def liver_inputs(draw: st.DrawFn) -> LiverInputs:
    return patient(
        bilirubin=draw(BILIRUBIN),
        inr=draw(INR),
        creatinine=draw(st.floats(min_value=0.2, max_value=12)),
        sodium=draw(st.floats(min_value=100, max_value=160)),
        albumin=draw(st.floats(min_value=0.5, max_value=6)),
        dialysis=draw(st.booleans()),
        female=draw(st.booleans()),
        ascites=draw(st.sampled_from(["none", "slight", "moderate"])),
        encephalopathy=draw(st.sampled_from(["none", "grade_1_2", "grade_3_4"])),
    )


def _with(inputs: LiverInputs, bilirubin: float, inr: float) -> LiverInputs:
    return replace(inputs, bilirubin_mg_dl=lab(bilirubin, "mg/dL"), inr=lab(inr, ""))


def _values(inputs: LiverInputs) -> list[int]:
    results: list[ScoreResult] = all_scores(inputs)
    assert all(r.value is not None for r in results), [r.missing for r in results]
    return [r.value for r in results]  # type: ignore[misc]


@settings(database=None, max_examples=300)
@given(liver_inputs(), BILIRUBIN, BILIRUBIN, INR, INR)
def test_scores_never_fall_as_bilirubin_or_inr_rise(
    inputs: LiverInputs, bilirubin_a: float, bilirubin_b: float, inr_a: float, inr_b: float
) -> None:
    low_bilirubin, high_bilirubin = sorted((bilirubin_a, bilirubin_b))
    low_inr, high_inr = sorted((inr_a, inr_b))
    low = _values(_with(inputs, bilirubin=low_bilirubin, inr=low_inr))
    higher_bilirubin = _values(_with(inputs, bilirubin=high_bilirubin, inr=low_inr))
    higher_both = _values(_with(inputs, bilirubin=high_bilirubin, inr=high_inr))
    assert all(a <= b for a, b in zip(low, higher_bilirubin, strict=True)), (low, higher_bilirubin)
    assert all(a <= b for a, b in zip(higher_bilirubin, higher_both, strict=True)), (
        higher_bilirubin,
        higher_both,
    )


@settings(database=None, max_examples=300)
@given(liver_inputs())
def test_meld_scores_stay_within_6_and_40(inputs: LiverInputs) -> None:
    meld_value, meld_na_value, meld_3_value, child_pugh_value = _values(inputs)
    assert 6 <= meld_value <= 40
    assert 6 <= meld_na_value <= 40
    assert 6 <= meld_3_value <= 40
    assert 5 <= child_pugh_value <= 15
