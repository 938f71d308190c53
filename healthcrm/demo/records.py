"""Two years of medical records for a demo clinic: visits with vitals, diagnoses and prescriptions, lab
series, allergies and immunizations.

Each patient has one long-term condition that most of their visits are about; Riverside adds acute visits.
Lakeside's liver patients are seen every couple of months and get worse over the two years (bilirubin, INR and
creatinine rise, sodium and albumin fall), so MELD and Child-Pugh mean something on their pages. Everything
comes from the clinic's seeded `random.Random`; only dates depend on the day of the run. Rows are added in one
batch with one flush, and one audit event says the clinic's records were seeded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..accounts.models import Tenant, User
from ..audit.services import Actor, record_event
from ..clock import utcnow, zone_info
from ..extensions import db
from ..patients.models import Patient
from ..records.icd10 import find_code
from ..records.labs import KNOWN_TESTS, compute_flag
from ..records.liver import ALBUMIN, BILIRUBIN, CREATININE, INR, SODIUM
from ..records.models import (
    DRAFT,
    FINALIZED,
    Allergy,
    Diagnosis,
    Immunization,
    LabResult,
    MedicalRecord,
    Prescription,
)

RECORDS_PER_CLINIC = 300
HISTORY_DAYS = 730
LIVER_PATIENTS = 10
LIVER_VISITS = (10, 13)  # per liver patient over the two years
SICKEST_LIVER_PATIENTS = 3
DRAFT_WITHIN_DAYS = 7  # only visits this recent may still be drafts
DRAFT_SHARE = 0.5
MAX_DIAGNOSES_PER_VISIT = 3
CLINIC_OPENS_HOUR = 8
CLINIC_LAST_VISIT_HOUR = 16  # the last appointment starts before 17:00
LAB_DRAWN_BEFORE_VISIT = timedelta(minutes=45)
ALLERGY_SHARE = 0.3
IMMUNIZED_SHARE = 0.7

ALT = "1742-6"
PLATELETS = "777-3"
HBA1C = "4548-4"
GLUCOSE = "2345-7"
CHOLESTEROL = "2093-3"
LIVER_PANEL = (BILIRUBIN, INR, CREATININE, SODIUM, ALBUMIN, ALT, PLATELETS)

# code: (reference low, reference high, decimals, healthy baseline low and high, visit-to-visit sd)
LAB_SPECS: dict[str, tuple[float | None, float | None, int, float, float, float]] = {
    BILIRUBIN: (0.1, 1.2, 1, 0.3, 1.0, 0.1),
    INR: (0.8, 1.1, 2, 0.9, 1.05, 0.03),
    CREATININE: (0.6, 1.3, 2, 0.7, 1.1, 0.06),
    SODIUM: (135, 145, 0, 137, 142, 1.2),
    ALBUMIN: (3.5, 5.0, 1, 3.8, 4.6, 0.1),
    ALT: (7, 56, 0, 14, 40, 5),
    PLATELETS: (150, 450, 0, 180, 360, 15),
    HBA1C: (4.0, 5.6, 1, 4.8, 5.5, 0.15),
    GLUCOSE: (70, 99, 0, 78, 97, 6),
    CHOLESTEROL: (None, 200, 0, 150, 195, 8),
}


@dataclass(frozen=True)
class Rx:
    drug: str
    dose: str
    route: str
    frequency: str
    duration: str | None = None
    refills: int = 0


@dataclass(frozen=True)
class VisitKind:
    """What a visit is about: the first code is the primary diagnosis, the others are added sometimes."""

    complaints: tuple[str, ...]
    codes: tuple[str, ...]
    plan: str
    notes: tuple[str, ...]
    prescriptions: tuple[Rx, ...] = ()
    labs: tuple[str, ...] = ()
    # The condition's lab baselines: code -> (low, high, change over the two years, e.g. as treatment works).
    lab_baselines: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    fever: bool = False
    follow_up_weeks: tuple[int, int] | None = None


HYPERTENSION = VisitKind(
    ("Blood pressure check", "Hypertension follow-up", "Headaches, checking blood pressure"),
    ("I10", "E78.5"),
    "Continue lisinopril 10 mg daily. Home blood pressure log; low-salt diet; recheck in 3 months.",
    (
        "Home readings mostly 130s/80s.",
        "No chest pain or shortness of breath.",
        "Tolerating ACE inhibitor well.",
    ),
    (Rx("Lisinopril", "10 mg", "oral", "once daily", "90 days", 3),),
    labs=(CREATININE, SODIUM, CHOLESTEROL),
    follow_up_weeks=(8, 14),
)
DIABETES = VisitKind(
    ("Diabetes follow-up", "Review of sugar readings", "Increased thirst"),
    ("E11.9", "I10", "E78.5"),
    "Continue metformin; diet and exercise counselling; foot check done; HbA1c in 3 months.",
    (
        "Fasting readings 110–160 at home.",
        "No hypoglycaemia.",
        "Walking 30 minutes most days.",
        "Monofilament sensation intact.",
    ),
    (Rx("Metformin", "500 mg", "oral", "twice daily with meals", "90 days", 3),),
    labs=(HBA1C, GLUCOSE, CHOLESTEROL),
    lab_baselines={HBA1C: (7.2, 9.4, -1.2), GLUCOSE: (130, 190, -35), CHOLESTEROL: (190, 240, -20)},
    follow_up_weeks=(10, 14),
)
HYPERLIPIDEMIA = VisitKind(
    ("Cholesterol results review", "Lipid follow-up"),
    ("E78.5", "I10"),
    "Start or continue atorvastatin 20 mg nightly; Mediterranean diet; repeat lipids in 3 months.",
    ("No muscle aches on statin.", "Family history of early heart disease."),
    (Rx("Atorvastatin", "20 mg", "oral", "once nightly", "90 days", 3),),
    labs=(CHOLESTEROL, GLUCOSE),
    lab_baselines={CHOLESTEROL: (225, 275, -45)},
    follow_up_weeks=(10, 16),
)
ANXIETY = VisitKind(
    ("Feeling anxious, poor sleep", "Anxiety follow-up", "Racing thoughts at night"),
    ("F41.1",),
    "Sertraline 50 mg daily; referral for CBT; sleep hygiene discussed.",
    ("GAD-7 score 12.", "GAD-7 score improving.", "No suicidal ideation."),
    (Rx("Sertraline", "50 mg", "oral", "once daily", "30 days", 2),),
    follow_up_weeks=(4, 8),
)
ASTHMA = VisitKind(
    ("Wheezing at night", "Asthma check", "Shortness of breath on exertion"),
    ("J45.909",),
    "Albuterol as needed; inhaler technique reviewed; asthma action plan updated.",
    ("Uses rescue inhaler twice a week.", "Symptoms worse in pollen season.", "Peak flow 80% of best."),
    (Rx("Albuterol HFA", "90 mcg, 2 puffs", "inhaled", "every 4–6 hours as needed", None, 1),),
)
ANNUAL_EXAM = VisitKind(
    ("Annual physical", "Routine check-up", "Yearly wellness visit"),
    ("Z00.00",),
    "Routine labs ordered; vaccines reviewed; continue regular exercise.",
    ("No complaints.", "Screening up to date.", "Counselled on diet and exercise."),
    labs=(GLUCOSE, CHOLESTEROL, HBA1C),
)
UPPER_RESPIRATORY = VisitKind(
    ("Sore throat and runny nose for 3 days", "Cough and congestion", "Fever and body aches"),
    ("J06.9",),
    "Supportive care: fluids, rest, paracetamol as needed. Return if fever lasts more than 3 days.",
    ("Throat mildly erythematous, no exudate.", "Lungs clear.", "Rapid strep negative."),
    (Rx("Benzonatate", "100 mg", "oral", "three times daily as needed", "7 days"),),
    fever=True,
)
BACK_PAIN = VisitKind(
    ("Lower back pain after lifting", "Back pain for two weeks"),
    ("M54.5",),
    "Ibuprofen, heat and stretching; physical therapy referral if not better in 4 weeks.",
    ("No red flags; straight-leg raise negative.", "Tender paraspinal muscles."),
    (Rx("Ibuprofen", "400 mg", "oral", "every 8 hours as needed", "10 days"),),
)

ALCOHOLIC_CIRRHOSIS = VisitKind(
    ("Abdominal swelling", "Cirrhosis follow-up", "Leg swelling and fatigue"),
    ("K70.31", "I85.00"),
    "2 g sodium diet; diuretics adjusted to weight; complete alcohol abstinence; variceal surveillance.",
    ("Abstinent since last visit.", "Reports more fatigue.", "Mild asterixis absent.", "Weight up 2 kg."),
    (
        Rx("Spironolactone", "100 mg", "oral", "once daily", "30 days", 2),
        Rx("Furosemide", "40 mg", "oral", "once daily", "30 days", 2),
    ),
    labs=LIVER_PANEL,
    follow_up_weeks=(6, 10),
)
CIRRHOSIS = VisitKind(
    ("Cirrhosis follow-up", "Fatigue and itching", "Abdominal fullness"),
    ("K74.60", "I85.00", "R18.8"),
    "Non-selective beta blocker for varices; HCC surveillance ultrasound every 6 months.",
    ("Stable weight.", "Ultrasound: no focal lesion.", "Pruritus at night."),
    (Rx("Nadolol", "20 mg", "oral", "once daily", "90 days", 3),),
    labs=LIVER_PANEL,
    follow_up_weeks=(6, 10),
)
HEPATITIS_C_CIRRHOSIS = VisitKind(
    ("Hepatitis C follow-up", "Cirrhosis follow-up"),
    ("B18.2", "K74.60", "I85.00"),
    "Sustained virological response confirmed; continue cirrhosis care and HCC surveillance.",
    ("HCV RNA undetectable.", "Adherent to medication.", "Mild fatigue."),
    (Rx("Sofosbuvir/velpatasvir", "400/100 mg", "oral", "once daily", "12 weeks"),),
    labs=LIVER_PANEL,
    follow_up_weeks=(6, 10),
)
FATTY_LIVER = VisitKind(
    ("Abnormal liver tests", "Fatty liver follow-up"),
    ("K76.0",),
    "Lose 7–10% of body weight; 150 minutes of exercise a week; no alcohol; liver tests again in 6 months.",
    ("Ultrasound: diffuse hepatic steatosis.", "Lost 3 kg since last visit.", "FIB-4 low risk."),
    labs=(ALT, BILIRUBIN, ALBUMIN, PLATELETS),
    lab_baselines={ALT: (60, 110, -25)},
    follow_up_weeks=(20, 28),
)
STEATOHEPATITIS = VisitKind(
    ("NASH follow-up", "Right upper quadrant discomfort"),
    ("K75.81", "K76.0"),
    "Weight loss programme; vitamin E discussed; elastography in 12 months.",
    ("Elastography 9.1 kPa.", "Diet diary reviewed."),
    labs=(ALT, BILIRUBIN, ALBUMIN, PLATELETS),
    lab_baselines={ALT: (70, 130, -20), PLATELETS: (150, 220, -20)},
    follow_up_weeks=(12, 20),
)
HEPATITIS_C = VisitKind(
    ("Hepatitis C treatment", "Positive hepatitis C antibody"),
    ("B18.2",),
    "Start direct-acting antiviral therapy for 12 weeks; HCV RNA 12 weeks after the end of treatment.",
    ("Genotype 1a.", "No drug interactions found.", "Counselled on reinfection risk."),
    (Rx("Sofosbuvir/velpatasvir", "400/100 mg", "oral", "once daily", "12 weeks"),),
    labs=(ALT, BILIRUBIN, ALBUMIN, PLATELETS),
    lab_baselines={ALT: (50, 120, -45)},
    follow_up_weeks=(8, 12),
)
ENCEPHALOPATHY_RX = Rx(
    "Lactulose", "20 g", "oral", "two to three times daily, titrate to 2–3 soft stools", "30 days", 5
)


@dataclass(frozen=True)
class RecordProfile:
    """A clinic's case mix: long-term conditions by weight, and acute visits mixed in."""

    conditions: tuple[tuple[VisitKind, int], ...]
    acute: tuple[VisitKind, ...] = ()
    acute_share: float = 0.0
    liver_conditions: tuple[VisitKind, ...] = ()


PROFILES = {
    "riverside": RecordProfile(
        conditions=((HYPERTENSION, 12), (DIABETES, 10), (HYPERLIPIDEMIA, 6), (ANXIETY, 5), (ASTHMA, 5),
                    (ANNUAL_EXAM, 12)),
        acute=(UPPER_RESPIRATORY, BACK_PAIN),
        acute_share=0.35,
    ),
    "lakeside": RecordProfile(
        conditions=((FATTY_LIVER, 5), (STEATOHEPATITIS, 3), (HEPATITIS_C, 2)),
        liver_conditions=(ALCOHOLIC_CIRRHOSIS, CIRRHOSIS, HEPATITIS_C_CIRRHOSIS),
    ),
}  # fmt: skip

# (substance, reaction, severity)
ALLERGENS = (
    ("Penicillin", "Hives", "moderate"),
    ("Peanuts", "Anaphylaxis", "severe"),
    ("Latex", "Contact dermatitis", "mild"),
    ("Sulfa drugs", "Rash", "moderate"),
    ("Shellfish", "Lip and tongue swelling", "severe"),
    ("Codeine", "Nausea and vomiting", "mild"),
    ("Bee stings", "Local swelling", "mild"),
)
# (vaccine, lot prefix)
INFLUENZA = ("Influenza, seasonal (IIV4)", "UJ")
COVID = ("COVID-19 mRNA, updated formula", "FW")
TDAP = ("Tdap", "AC52B")
HEPATITIS_B = ("Hepatitis B (Engerix-B)", "HB")
INJECTION_SITES = ("Left deltoid", "Right deltoid")


@dataclass
class _PatientPlan:
    patient: Patient
    condition: VisitKind
    visits: int
    severity: float | None = None  # liver patients only, 0..1
    lab_baselines: dict[str, float] = field(default_factory=dict)


class CodeListMissing(Exception):
    """The ICD-10-CM code list lacks a code the demo uses (it has not been loaded)."""


def seed_records(tenant: Tenant, patients: list[Patient], doctors: list[User], rng: random.Random) -> int:
    """Add about `RECORDS_PER_CLINIC` records with labs, allergies and immunizations for a new demo clinic.

    Flushes once and audits once; does not commit. Returns the number of records. Raises CodeListMissing when
    the ICD-10-CM list is not loaded (`flask icd10 load`).
    """
    profile = PROFILES[tenant.slug]
    codes = _codes(profile)
    now = utcnow()
    zone = zone_info(tenant.timezone)
    plans = _plans(profile, patients, rng)
    rows: list = []
    records: list[MedicalRecord] = []
    for plan in plans:
        doctor = rng.choice(doctors)
        visit_times = _visit_times(plan, now, zone, rng)
        vitals = _VitalsBaseline(plan.patient, plan.condition, rng)
        for index, visit_at in enumerate(visit_times):
            progress = index / max(1, len(visit_times) - 1)
            kind = plan.condition
            # A healthy patient has one check-up; whatever brings them back is acute.
            yearly_again = kind is ANNUAL_EXAM and index > 0
            if profile.acute and (yearly_again or rng.random() < profile.acute_share):
                kind = rng.choice(profile.acute)
            record = _record(tenant, plan, kind, doctor, visit_at, progress, now, codes, vitals, rng)
            if kind.labs and (plan.severity is not None or rng.random() < 0.7):
                record.labs.extend(_labs(tenant, plan, kind, doctor, visit_at, progress, rng))
            records.append(record)
        rows += _allergies(tenant, plan.patient, doctor, rng)
        rows += _immunizations(
            tenant, plan.patient, doctor, now.date(), rng, hepatitis_b=bool(profile.liver_conditions)
        )
    db.session.add_all(records)
    db.session.add_all(rows)
    db.session.flush()
    record_event(
        Actor.system(tenant.id), "demo.records_seeded", resource_type="tenant", resource_id=tenant.id
    )
    return len(records)


def _codes(profile: RecordProfile) -> dict[str, tuple[str, str]]:
    """Display code and name of every code the profile uses, from the code list."""
    kinds = [kind for kind, _ in profile.conditions] + list(profile.acute) + list(profile.liver_conditions)
    wanted = {code for kind in kinds for code in kind.codes} | (
        {"R18.8", "K72.90"} if profile.liver_conditions else set()
    )
    found = {}
    for code in sorted(wanted):
        listed = find_code(code)
        if listed is None:
            raise CodeListMissing(
                f"ICD-10-CM code {code} is not in the code list; run `flask icd10 load` first."
            )
        found[code] = (listed.display_code, listed.name)
    return found


def _plans(profile: RecordProfile, patients: list[Patient], rng: random.Random) -> list[_PatientPlan]:
    """Who has what and how many visits: liver patients first, other records spread by care stage."""
    plans = []
    rest = list(patients)
    if profile.liver_conditions:
        # The longest-registered patients still in care: their history covers the two years.
        in_care = sorted(
            (p for p in patients if p.care_stage in ("active", "maintenance")), key=lambda p: p.created_at
        )
        liver = in_care[:LIVER_PATIENTS]
        severities = [0.1 + 0.9 * i / (len(liver) - 1) for i in range(len(liver))]
        rng.shuffle(severities)
        for index, (patient, severity) in enumerate(zip(liver, severities, strict=True)):
            condition = profile.liver_conditions[index % len(profile.liver_conditions)]
            plans.append(_PatientPlan(patient, condition, rng.randint(*LIVER_VISITS), severity))
            rest.remove(patient)
    conditions, weights = zip(*profile.conditions, strict=True)
    stage_weight = {"new": 0.3, "onboarding": 1.0, "active": 3.0, "maintenance": 2.0, "discharged": 1.0}
    others = [_PatientPlan(p, rng.choices(conditions, weights=weights)[0], 1) for p in rest]
    remaining = RECORDS_PER_CLINIC - sum(plan.visits for plan in plans) - len(others)
    for plan in rng.choices(
        others, weights=[stage_weight[p.patient.care_stage] for p in others], k=remaining
    ):
        plan.visits += 1
    plans += others
    for plan in plans:
        plan.lab_baselines = {code: rng.uniform(spec[3], spec[4]) for code, spec in LAB_SPECS.items()}
        for code, (low, high, _) in plan.condition.lab_baselines.items():
            plan.lab_baselines[code] = rng.uniform(low, high)
    return plans


def _nearest_weekday_in(local: datetime, start: datetime, now: datetime) -> datetime:
    """A weekday at the same clinic time, within [start, now] (naive UTC): a weekend or not-yet-happened
    visit moves to an earlier weekday, unless that would leave the window (the oldest visits), then to a
    later one. Moving days in local time keeps the wall-clock hour across a DST change."""

    def as_utc(moment: datetime) -> datetime:
        return moment.astimezone(UTC).replace(tzinfo=None)

    earlier = local
    while earlier.weekday() >= 5 or as_utc(earlier) > now:
        earlier -= timedelta(days=1)
    if as_utc(earlier) >= start:
        return as_utc(earlier)
    later = local
    while later.weekday() >= 5 or as_utc(later) < start:
        later += timedelta(days=1)
    return as_utc(later) if as_utc(later) <= now else as_utc(earlier)


def _visit_times(plan: _PatientPlan, now: datetime, zone: ZoneInfo, rng: random.Random) -> list[datetime]:
    """Weekday appointments in clinic hours (clinic time), as naive UTC, oldest first, none in the future."""
    start = max(now - timedelta(days=HISTORY_DAYS), plan.patient.created_at)
    end = now - timedelta(days=60) if plan.patient.care_stage == "discharged" else now
    end = max(end, start + timedelta(days=1))
    span = (end - start).total_seconds()
    if plan.severity is not None:  # liver patients: evenly spaced, the last one recent
        moments = [
            start + timedelta(seconds=span * (i + rng.uniform(0.1, 0.9)) / plan.visits)
            for i in range(plan.visits)
        ]
    else:
        moments = sorted(start + timedelta(seconds=rng.uniform(0, span)) for _ in range(plan.visits))
    times = []
    for moment in moments:
        day = moment.replace(tzinfo=UTC).astimezone(zone).date()
        local = datetime.combine(
            day,
            time(rng.randint(CLINIC_OPENS_HOUR, CLINIC_LAST_VISIT_HOUR), rng.choice((0, 15, 30, 45))),
            zone,
        )
        times.append(_nearest_weekday_in(local, start, now))
    return sorted(times)


class _VitalsBaseline:
    """A patient's usual vitals; each visit varies around them."""

    def __init__(self, patient: Patient, condition: VisitKind, rng: random.Random):
        self.height_cm = {"female": rng.uniform(152, 175), "male": rng.uniform(165, 191)}.get(
            patient.sex, rng.uniform(155, 185)
        )
        self.weight_kg = rng.uniform(20, 34) * (self.height_cm / 100) ** 2
        self.systolic = rng.uniform(112, 128) + (18 if "I10" in condition.codes else 0)
        self.pulse = rng.uniform(60, 86)

    def apply(self, record: MedicalRecord, fever: bool, rng: random.Random) -> None:
        systolic = round(self.systolic + rng.gauss(0, 7))
        record.bp_systolic = systolic
        record.bp_diastolic = round(systolic * 0.63 + rng.gauss(0, 4))
        record.pulse = round(self.pulse + rng.gauss(0, 5) + (12 if fever else 0))
        record.temperature_c = round(rng.uniform(37.6, 38.6) if fever else rng.uniform(36.4, 37.1), 1)
        record.respiratory_rate = rng.randint(12, 18)
        record.spo2 = rng.randint(95, 99)
        record.weight_kg = round(self.weight_kg + rng.gauss(0, 1.0), 1)
        record.height_cm = round(self.height_cm, 1)


def _record(
    tenant: Tenant,
    plan: _PatientPlan,
    kind: VisitKind,
    doctor: User,
    visit_at: datetime,
    progress: float,
    now: datetime,
    codes: dict[str, tuple[str, str]],
    vitals: _VitalsBaseline,
    rng: random.Random,
) -> MedicalRecord:
    record = MedicalRecord(
        tenant_id=tenant.id,
        patient_id=plan.patient.id,
        doctor_id=doctor.id,
        author_id=doctor.id,
        visit_at=visit_at,
        chief_complaint=rng.choice(kind.complaints),
        treatment_plan=kind.plan,
        notes=" ".join(rng.sample(kind.notes, k=min(len(kind.notes), rng.randint(1, 2)))),
        on_dialysis=False,
        attachment_count=0,
        created_at=visit_at,
        updated_at=visit_at,
    )
    vitals.apply(record, kind.fever, rng)
    if now - visit_at < timedelta(days=DRAFT_WITHIN_DAYS) and rng.random() < DRAFT_SHARE:
        record.status = DRAFT
    else:
        record.status = FINALIZED
        record.finalized_at = min(now, visit_at + timedelta(hours=rng.uniform(1, 30)))
        record.finalized_by_id = doctor.id
        record.updated_at = record.finalized_at
    chosen = [kind.codes[0], *(code for code in kind.codes[1:] if rng.random() < 0.4)]
    prescriptions = list(kind.prescriptions) if kind.prescriptions and rng.random() < 0.4 else []
    if plan.severity is not None:
        _assess_liver(record, plan.severity * progress, chosen, prescriptions)
    for position, code in enumerate(chosen[:MAX_DIAGNOSES_PER_VISIT]):
        shown, name = codes[code]
        record.diagnoses.append(
            Diagnosis(tenant_id=tenant.id, code=shown, name=name, is_primary=position == 0)
        )
    for rx in prescriptions:
        record.prescriptions.append(
            Prescription(
                tenant_id=tenant.id,
                drug=rx.drug,
                dose=rx.dose,
                route=rx.route,
                frequency=rx.frequency,
                duration=rx.duration,
                refills=rx.refills,
            )
        )
    if kind.follow_up_weeks and (plan.severity is not None or rng.random() < 0.5):
        record.follow_up_required = True
        record.follow_up_date = visit_at.date() + timedelta(weeks=rng.randint(*kind.follow_up_weeks))
    return record


def _assess_liver(record: MedicalRecord, illness: float, codes: list[str], prescriptions: list[Rx]) -> None:
    """Ascites and encephalopathy grow with the illness (severity × progress); the diagnoses follow."""
    record.ascites = "moderate" if illness > 0.75 else "slight" if illness > 0.45 else "none"
    record.encephalopathy = "grade_3_4" if illness > 0.92 else "grade_1_2" if illness > 0.6 else "none"
    if record.ascites != "none" and "R18.8" not in codes and "K70.31" not in codes:
        codes.insert(1, "R18.8")
    if record.encephalopathy != "none":
        codes.insert(1, "K72.90")
        prescriptions.append(ENCEPHALOPATHY_RX)


def _labs(
    tenant: Tenant,
    plan: _PatientPlan,
    kind: VisitKind,
    doctor: User,
    visit_at: datetime,
    progress: float,
    rng: random.Random,
) -> list[LabResult]:
    observed_at = visit_at - LAB_DRAWN_BEFORE_VISIT
    results = []
    for code in kind.labs:
        ref_low, ref_high, decimals, _, _, sd = LAB_SPECS[code]
        value = plan.lab_baselines[code] + rng.gauss(0, sd)
        drift = kind.lab_baselines.get(code)
        if drift:
            value += drift[2] * progress
        if plan.severity is not None:
            value = _liver_value(code, plan.lab_baselines[code], plan.severity * progress**1.5, sd, rng)
        value = round(max(value, 0.1 if decimals else 1), decimals)
        known = KNOWN_TESTS[code]
        results.append(
            LabResult(
                tenant_id=tenant.id,
                patient_id=plan.patient.id,
                code=code,
                name=known.name,
                value_numeric=value,
                unit=known.unit,
                ref_low=ref_low,
                ref_high=ref_high,
                flag=compute_flag(value, ref_low, ref_high),
                observed_at=observed_at,
                entered_by_id=doctor.id,
                created_at=visit_at,
            )
        )
    return results


# How far each liver lab moves from the patient's baseline at full illness (severity 1 at the last visit).
LIVER_WORSENING = {
    BILIRUBIN: 5.5,
    INR: 1.15,
    CREATININE: 1.2,
    SODIUM: -10,
    ALBUMIN: -1.5,
    PLATELETS: -120,
    ALT: 15,
}


def _liver_value(code: str, baseline: float, illness: float, sd: float, rng: random.Random) -> float:
    # Noise grows with the illness, so a sick patient's series zigzags like real results do.
    noise = rng.gauss(0, sd * (1 + 2 * illness))
    return baseline + LIVER_WORSENING[code] * illness + noise


def _allergies(tenant: Tenant, patient: Patient, doctor: User, rng: random.Random) -> list[Allergy]:
    if rng.random() >= ALLERGY_SHARE:
        return []
    chosen = rng.sample(ALLERGENS, k=rng.choice((1, 1, 1, 2)))
    return [
        Allergy(
            tenant_id=tenant.id,
            patient_id=patient.id,
            substance=substance,
            reaction=reaction,
            severity=severity,
            status="active" if rng.random() < 0.85 else "inactive",
            recorded_at=patient.created_at + timedelta(days=rng.randint(0, 7)),
            recorded_by_id=doctor.id,
        )
        for substance, reaction, severity in chosen
    ]


def _immunizations(
    tenant: Tenant, patient: Patient, doctor: User, today: date, rng: random.Random, *, hepatitis_b: bool
) -> list[Immunization]:
    if rng.random() >= IMMUNIZED_SHARE:
        return []
    given: list[tuple[tuple[str, str], date, int | None]] = []
    for years_ago in (1, 0):  # the last two flu seasons, autumn
        flu_day = date(today.year - years_ago, rng.choice((9, 10, 11)), rng.randint(1, 28))
        if flu_day <= today and rng.random() < 0.75:
            given.append((INFLUENZA, flu_day, None))
    if rng.random() < 0.6:
        given.append((COVID, today - timedelta(days=rng.randint(30, 400)), None))
    if rng.random() < 0.4:
        given.append((TDAP, today - timedelta(days=rng.randint(100, 3500)), None))
    if hepatitis_b and rng.random() < 0.5:
        first = today - timedelta(days=rng.randint(220, 700))
        for dose, months in enumerate((0, 1, 6), start=1):
            given.append((HEPATITIS_B, first + timedelta(days=30 * months), dose))
    return [
        Immunization(
            tenant_id=tenant.id,
            patient_id=patient.id,
            vaccine=vaccine,
            given_on=given_on,
            dose_number=dose,
            lot=f"{lot_prefix}{rng.randint(1000, 9999)}",
            site=rng.choice(INJECTION_SITES),
            given_by=tenant.name if rng.random() < 0.7 else "Community pharmacy",
            recorded_by_id=doctor.id,
        )
        for (vaccine, lot_prefix), given_on, dose in given
    ]
