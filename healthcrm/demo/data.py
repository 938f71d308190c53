"""The demo clinics behind `flask demo`: two clinics, their staff, about fifty patients each, and two
years of their medical records (see `records.py`).

Everything is generated from fixed seeds, so every machine gets the same people, MRNs and emails;
only dates are anchored to the day of the run (so ages stay between 18 and 90). Seeding is
idempotent: a clinic whose slug already exists is left alone, and the only thing a later run may
change is the demo users' password.
"""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

from faker import Faker
from sqlalchemy import select

from ..accounts import registration
from ..accounts.models import ADMIN, ALL_ROLES, COACH, DOCTOR, FRONT_DESK, NURSE, PATIENT, Tenant, User
from ..accounts.secrets import hash_password, password_problem, verify_password
from ..audit.archive import archive_due
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..extensions import db
from ..patients.models import EmergencyContact, Patient
from ..portal import events
from ..tenant_scope import all_tenants
from . import (
    archived_files,
    audit_history,
    lifecycle,
    portal_docs,
    portal_msg,
    portal_profile,
    scheduling,
    storage_cost,
)
from .portal_self import seed as seed_self_service
from .portal_tasks import seed as seed_portal_tasks
from .records import CodeListMissing, seed_records
from .templates import seed_templates

DEMO_URL = "http://127.0.0.1:5000"
PATIENTS_PER_CLINIC = 50
PORTAL_ACCOUNTS_PER_CLINIC = 5
MIN_AGE_YEARS = 18
MAX_AGE_YEARS = 90
GENERATED_PASSWORD_BYTES = 12  # secrets.token_urlsafe(12) gives 16 characters

# How the patients of a clinic spread over the care stages (keys of patients.models.CARE_STAGES);
# the counts add up to PATIENTS_PER_CLINIC.
CARE_STAGE_COUNTS = {"new": 6, "onboarding": 8, "active": 20, "maintenance": 11, "discharged": 5}
# Patients in these stages are the ones who would plausibly use the portal.
PORTAL_STAGES = ("active", "maintenance", "onboarding")
# Days since the patient was registered, by care stage, so the list sorts like a real practice.
REGISTERED_DAYS_AGO = {
    "new": (0, 14),
    "onboarding": (7, 60),
    "active": (30, 720),
    "maintenance": (180, 1500),
    "discharged": (90, 1500),
}
SEX_WEIGHTS = {"female": 52, "male": 45, "other": 2, "unknown": 1}

# (provider, weight among commercial plans, member id pattern for Faker.bothify: # digit, ? letter)
COMMERCIAL_PLANS = (
    ("Blue Cross Blue Shield", 30, "???#########"),
    ("UnitedHealthcare", 22, "#########"),
    ("Aetna", 18, "W#########"),
    ("Cigna", 15, "U########01"),
    ("Humana", 10, "H########"),
    ("Kaiser Permanente", 5, "########"),
)
MEDICARE = "Medicare"
MEDICAID = "Medicaid"
# Medicare Beneficiary Identifiers never use these letters; keeping the demo ids plausible.
MBI_LETTERS = "ACDEFGHJKMNPQRTUVWXY"
# RFC 2606 reserved domains: demo mail can never reach a real inbox.
PATIENT_EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
EMERGENCY_RELATIONSHIPS = {
    "young": ("Parent", "Parent", "Sibling", "Partner", "Friend"),
    "adult": ("Spouse", "Spouse", "Partner", "Sibling", "Parent", "Friend"),
    "senior": ("Spouse", "Adult child", "Adult child", "Sibling", "Friend"),
}
STAFF_EMAIL_LOCAL_PARTS = {
    ADMIN: "admin",
    DOCTOR: "doctor",
    NURSE: "nurse",
    COACH: "coach",
    FRONT_DESK: "frontdesk",
}


@dataclass(frozen=True)
class DemoClinic:
    """What makes one demo clinic itself: identity, locale and a seed of its own."""

    name: str
    slug: str
    timezone: str
    mrn_prefix: str
    home_state: str
    area_codes: tuple[str, ...]
    seed: int
    # Kept False on both clinics so the printed emails and password are enough to sign in. A real
    # hepatology practice would likely require MFA for its staff.
    mfa_required_for_staff: bool = False
    # Clinical settings: both demo clinics are in the US and read vitals in lb, in and °F.
    unit_system: str = "us"
    score_input_max_age_days: int = 90

    @property
    def email_domain(self) -> str:
        return f"{self.slug}.example"

    def staff_email(self, role: str) -> str:
        return f"{STAFF_EMAIL_LOCAL_PARTS[role]}@{self.email_domain}"

    @property
    def first_portal_email(self) -> str:
        """The predictable portal login, printed by `flask demo`."""
        return f"patient@{self.email_domain}"


DEMO_CLINICS = (
    DemoClinic(
        name="Riverside Family Clinic",
        slug="riverside",
        timezone="America/Chicago",
        mrn_prefix="RFC",
        home_state="IL",
        area_codes=("312", "773", "630", "708", "847"),
        seed=10_001,
    ),
    DemoClinic(
        name="Lakeside Hepatology",
        slug="lakeside",
        timezone="America/New_York",
        mrn_prefix="LKH",
        home_state="NY",
        area_codes=("212", "718", "917", "646", "347"),
        seed=20_002,
        # Left False on purpose (see DemoClinic): the demo must be usable without an authenticator app.
        mfa_required_for_staff=False,
    ),
)


class DemoError(Exception):
    """The demo cannot be seeded as asked (a weak password, an email already taken)."""


class DemoLogin(NamedTuple):
    """One line of the login table: which clinic, which role, which email."""

    clinic: str
    role: str
    email: str


@dataclass(frozen=True)
class DemoCode:
    """An open registration code of a demo patient without an account, to try /register with."""

    clinic: str
    patient: str
    date_of_birth: str
    code: str


@dataclass
class DemoResult:
    """What a run of `seed_demo` did.

    `password` is the password every demo user now has when this run set it (generated or given),
    and None when passwords were left unchanged. `passwords_changed` is False when nothing was
    written, including when the given password was already everyone's password.
    """

    created_clinics: list[str] = field(default_factory=list)
    password: str | None = None
    passwords_changed: bool = False
    logins: list[DemoLogin] = field(default_factory=list)
    registration_codes: list[DemoCode] = field(default_factory=list)


@all_tenants("the demo seeds and checks every demo clinic")
def seed_demo(password: str | None) -> DemoResult:
    """Create the demo clinics that do not exist yet and set the demo users' password; commit once.

    With `password`, every user of the demo clinics gets it (also on an already seeded database).
    Without it, a random password is generated only when users were created or no demo user has a
    password yet; otherwise passwords are left alone and `DemoResult.password` is None.
    Raises DemoError if the password is too weak or a demo email belongs to someone else.
    """
    if password is not None:
        problem = password_problem(password)
        if problem:
            raise DemoError(f"The demo password is not accepted: {problem}")
    try:
        result = DemoResult()
        tenants: list[Tenant] = []
        for clinic in DEMO_CLINICS:
            tenant = db.session.scalar(select(Tenant).where(Tenant.slug == clinic.slug))
            if tenant is None:
                tenant = _create_clinic(clinic)
                result.created_clinics.append(clinic.name)
            tenants.append(tenant)

        users = _demo_users(tenants)
        if password is None and (result.created_clinics or not any(u.has_password for u in users)):
            password = _generated_password()
        if password is not None:
            result.password = password
            result.passwords_changed = _set_passwords(tenants, users, password)
        result.logins = [DemoLogin(user.tenant.name, user.role, user.email) for user in users]
        result.registration_codes = _registration_codes(tenants)
        # The seeded portal activity raised events (a message sent, a refill requested): handle them here,
        # so the demo's tasks and notifications exist when the server starts, with or without a worker.
        events.commit_and_handle_here()
        # The history's oldest months are past the 13-month hot window: into the archive, as every night.
        for tenant in tenants:
            archive_due(tenant.id)
        # Lifecycle settings that differ between the clinics, and the files' archive tags.
        lifecycle.seed(tenants)
    except Exception:
        db.session.rollback()
        events.discard_pending()
        raise
    return result


# --- registration codes -------------------------------------------------------------------------------

# A known code per clinic (Crockford base32: no I, L, O, U), kept open on every run until someone uses it.
DEMO_REGISTRATION_CODES = {"riverside": "RVSD-2026-AB", "lakeside": "WTRS-2026-CD"}


def _registration_codes(tenants: list[Tenant]) -> list[DemoCode]:
    codes = []
    for tenant in tenants:
        code = DEMO_REGISTRATION_CODES.get(tenant.slug)
        row = registration.ensure_demo_code(tenant.id, code) if code else None
        if row is not None:
            codes.append(
                DemoCode(tenant.name, row.patient.full_name, row.patient.date_of_birth.isoformat(), code)
            )
    return codes


# --- passwords -----------------------------------------------------------------------------------


def _generated_password() -> str:
    # 16 random URL-safe characters practically always pass the rules; the loop makes it certain.
    while True:
        candidate = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        if password_problem(candidate) is None:
            return candidate


def _demo_users(tenants: list[Tenant]) -> list[User]:
    """Every user of the demo clinics, in clinic order, then staff roles before patients."""
    query = select(User).where(User.tenant_id.in_([t.id for t in tenants]))
    clinic_order = {t.id: i for i, t in enumerate(tenants)}

    def order(user: User) -> tuple[int, int, int]:
        role_order = ALL_ROLES.index(user.role) if user.role in ALL_ROLES else len(ALL_ROLES)
        return clinic_order[user.tenant_id], role_order, user.id

    return sorted(db.session.scalars(query), key=order)


def _set_passwords(tenants: list[Tenant], users: list[User], password: str) -> bool:
    """Give every demo user `password`; return False when they all had it already.

    Argon2 is deliberately slow, so the password is hashed once and the same hash string is stored
    for every user; for the same reason "already set" is checked once per distinct stored hash.
    """
    stored = {u.password_hash for u in users}
    if users and None not in stored and all(verify_password(h, password) for h in stored):
        return False
    password_hash = hash_password(password)
    now = utcnow()
    for user in users:
        user.password_hash = password_hash
        user.password_changed_at = now
    for tenant in tenants:
        if any(u.tenant_id == tenant.id for u in users):
            record_event(
                Actor.system(tenant.id),
                "demo.passwords_set",
                resource_type="tenant",
                resource_id=tenant.id,
                changed_fields=["password_hash"],
            )
    return True


# --- one clinic ----------------------------------------------------------------------------------


def _create_clinic(clinic: DemoClinic) -> Tenant:
    """Add one clinic with its staff, patients, portal accounts and records, and audit it; no commit."""
    fake = Faker("en_US")
    fake.seed_instance(clinic.seed)
    rng = random.Random(clinic.seed)
    today = utcnow().date()

    staff_emails = [clinic.staff_email(role) for role in STAFF_EMAIL_LOCAL_PARTS]
    _refuse_taken_emails([*staff_emails, clinic.first_portal_email])

    tenant = Tenant(
        name=clinic.name,
        slug=clinic.slug,
        timezone=clinic.timezone,
        mfa_required_for_staff=clinic.mfa_required_for_staff,
        unit_system=clinic.unit_system,
        score_input_max_age_days=clinic.score_input_max_age_days,
    )
    db.session.add(tenant)
    db.session.flush()

    staff = {role: _staff_member(tenant, clinic, fake, role) for role in STAFF_EMAIL_LOCAL_PARTS}
    db.session.add_all(staff.values())
    db.session.flush()

    patients = _patients(tenant, clinic, fake, rng, today, coach=staff[COACH])
    db.session.add_all(patients)
    db.session.flush()

    portal_users = _portal_users(tenant, clinic, patients)
    db.session.add_all(portal_users)
    db.session.flush()

    seed_templates(tenant, staff[ADMIN])
    try:
        seed_records(tenant, patients, [staff[DOCTOR]], rng)
    except CodeListMissing as error:
        raise DemoError(str(error)) from error
    portal_msg.seed(tenant, patients, staff, rng)
    seed_self_service(tenant, patients, staff, rng)

    seed_portal_tasks(tenant, patients, staff, rng)
    portal_docs.seed(tenant, patients, staff, rng)
    archived_files.seed(tenant, patients, staff)  # GLACIER files to try the restore flow
    portal_profile.seed(tenant)
    scheduling.seed(tenant, patients, staff, rng, main_patient_email=clinic.first_portal_email)

    record_event(Actor.system(tenant.id), "demo.seeded", resource_type="tenant", resource_id=tenant.id)
    audit_history.seed(tenant, patients, staff, portal_users[0], rng)
    storage_cost.seed(tenant, staff, random.Random(clinic.seed + 14))  # its own draws: the others stay
    return tenant


def _refuse_taken_emails(emails: list[str]) -> None:
    # Emails are unique across clinics; a leftover user with a demo email would make the insert fail
    # halfway, so say clearly which one is in the way instead.
    taken = sorted(db.session.scalars(select(User.email).where(User.email.in_(emails))))
    if taken:
        raise DemoError(f"Cannot create the demo clinic: {', '.join(taken)} already belongs to another user.")


def _staff_member(tenant: Tenant, clinic: DemoClinic, fake: Faker, role: str) -> User:
    full_name = f"{fake.first_name()} {fake.last_name()}"
    if role == DOCTOR:
        full_name = f"Dr. {full_name}"
    return User(tenant_id=tenant.id, email=clinic.staff_email(role), full_name=full_name, role=role)


def _patients(
    tenant: Tenant, clinic: DemoClinic, fake: Faker, rng: random.Random, today: date, *, coach: User
) -> list[Patient]:
    """The clinic's patients, oldest registration first, MRNs rising with registration."""
    stages = [stage for stage, count in CARE_STAGE_COUNTS.items() for _ in range(count)]
    rng.shuffle(stages)

    now = utcnow()
    used_emails: set[str] = set()
    patients = [
        _patient(tenant, clinic, fake, rng, today, now, stage, coach, used_emails) for stage in stages
    ]
    patients.sort(key=lambda p: p.created_at)
    mrn_numbers = sorted(rng.sample(range(100, 10_000), len(patients)))
    for patient, number in zip(patients, mrn_numbers, strict=True):
        patient.mrn = f"{clinic.mrn_prefix}-{number:06d}"
    return patients


def _patient(
    tenant: Tenant,
    clinic: DemoClinic,
    fake: Faker,
    rng: random.Random,
    today: date,
    now: datetime,
    stage: str,
    coach: User,
    used_emails: set[str],
) -> Patient:
    sex = rng.choices(list(SEX_WEIGHTS), weights=list(SEX_WEIGHTS.values()))[0]
    first_name = {"female": fake.first_name_female, "male": fake.first_name_male}.get(sex, fake.first_name)()
    last_name = fake.last_name()
    date_of_birth = _date_of_birth(rng, today)
    age = today.year - date_of_birth.year
    state = clinic.home_state if rng.random() < 0.85 else fake.state_abbr(include_territories=False)
    provider, member_id, group = _insurance(fake, rng, age)
    low, high = REGISTERED_DAYS_AGO[stage]
    registered = now - timedelta(days=rng.randint(low, high), minutes=rng.randint(0, 24 * 60))

    patient = Patient(
        tenant_id=tenant.id,
        first_name=first_name,
        last_name=last_name,
        date_of_birth=date_of_birth,
        sex=sex,
        email=_unique_email(first_name, last_name, rng, used_emails),
        phone=_phone(clinic, rng),
        address_line=fake.street_address(),
        city=fake.city(),
        state=state,
        postal_code=fake.zipcode_in_state(state),
        insurance_provider=provider,
        insurance_member_id=member_id,
        insurance_group=group,
        care_stage=stage,
        # Coaches are assigned during onboarding, so brand-new patients have none yet.
        assigned_coach_id=None if stage == "new" else coach.id,
        created_at=registered,
        updated_at=registered,
    )
    for _ in range(rng.choice((1, 1, 2))):
        patient.emergency_contacts.append(_emergency_contact(tenant, clinic, fake, rng, last_name, age))
    return patient


def _date_of_birth(rng: random.Random, today: date) -> date:
    # Born in (today.year - years): the patient is `years` or `years - 1` old today, so drawing
    # years from 19..90 keeps every age within 18..90 whatever day the demo is seeded.
    years = rng.randint(MIN_AGE_YEARS + 1, MAX_AGE_YEARS)
    return date(today.year - years, rng.randint(1, 12), rng.randint(1, 28))


def _insurance(fake: Faker, rng: random.Random, age: int) -> tuple[str, str, str | None]:
    """(provider, member id, group); Medicare and Medicaid have no group number."""
    if age >= 65 and rng.random() < 0.8:
        mbi = fake.bothify("%?#?#?#??##", letters=MBI_LETTERS)
        return MEDICARE, mbi, None
    if rng.random() < 0.1:
        return MEDICAID, fake.numerify("##########"), None
    names, weights, patterns = zip(*COMMERCIAL_PLANS, strict=True)
    index = rng.choices(range(len(names)), weights=weights)[0]
    member_id = fake.bothify(patterns[index], letters="ABCDEFGHJKLMNPRSTUVWXYZ")
    return names[index], member_id, fake.numerify("######")


def _unique_email(first_name: str, last_name: str, rng: random.Random, used: set[str]) -> str:
    local = re.sub(r"[^a-z.]", "", f"{first_name}.{last_name}".lower())
    domain = rng.choice(PATIENT_EMAIL_DOMAINS)
    email = f"{local}@{domain}"
    suffix = 2
    while email in used:
        email = f"{local}{suffix}@{domain}"
        suffix += 1
    used.add(email)
    return email


def _phone(clinic: DemoClinic, rng: random.Random) -> str:
    # 555-0100..555-0199 is the range reserved for fiction: no real person gets a call.
    return f"({rng.choice(clinic.area_codes)}) 555-01{rng.randint(0, 99):02d}"


def _emergency_contact(
    tenant: Tenant, clinic: DemoClinic, fake: Faker, rng: random.Random, patient_last_name: str, age: int
) -> EmergencyContact:
    group = "young" if age < 30 else "senior" if age >= 65 else "adult"
    relationship = rng.choice(EMERGENCY_RELATIONSHIPS[group])
    family = relationship in {"Spouse", "Parent", "Sibling", "Adult child"}
    last_name = patient_last_name if family and rng.random() < 0.7 else fake.last_name()
    return EmergencyContact(
        tenant_id=tenant.id,
        name=f"{fake.first_name()} {last_name}",
        relationship_to_patient=relationship,
        phone=_phone(clinic, rng),
    )


def _portal_users(tenant: Tenant, clinic: DemoClinic, patients: list[Patient]) -> list[User]:
    """Portal accounts for a few engaged patients; the first gets the predictable demo email."""
    candidates = [p for stage in PORTAL_STAGES for p in patients if p.care_stage == stage]
    taken = set(db.session.scalars(select(User.email).where(User.email.in_([p.email for p in candidates]))))
    chosen: list[Patient] = []
    for patient in candidates:
        if len(chosen) == PORTAL_ACCOUNTS_PER_CLINIC:
            break
        # The first one's email is replaced below, so only the others must be free.
        if chosen and patient.email in taken:
            continue
        chosen.append(patient)
    chosen[0].email = clinic.first_portal_email
    return [
        User(
            tenant_id=tenant.id,
            email=patient.email,
            full_name=patient.full_name,
            role=PATIENT,
            patient_id=patient.id,
        )
        for patient in chosen
    ]
