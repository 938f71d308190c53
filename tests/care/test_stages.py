"""Care stages move on the clinic's rules, inside the event's handling, audited with the rule; the settings
page edits the rules, the clinic's details and the response targets."""

from __future__ import annotations

from sqlalchemy import func, select

from healthcrm.accounts.models import Tenant
from healthcrm.audit.models import AuditEvent
from healthcrm.care import stages
from healthcrm.care.models import CareStageMove, CareStageRule, ResponseTarget
from healthcrm.extensions import db
from healthcrm.patients.models import Patient
from healthcrm.portal import events


def stage_of(clinic) -> str:
    db.session.expire_all()
    return db.session.get(Patient, clinic.patient.id).care_stage


def handle(clinic, kind: str, subject=("thread", 1)) -> int:
    event = clinic.event(kind, subject)
    db.session.commit()
    assert events.handle_event(event.id, clinic.tenant.id)
    return event.id


def test_a_new_clinic_gets_the_default_rules(clinic):
    stages.ensure_default_rules(clinic.tenant.id)
    stages.ensure_default_rules(clinic.tenant.id)
    db.session.commit()
    described = [stages.describe_rule(rule) for rule in stages.stage_rules(clinic.tenant.id)]
    assert len(described) == len(stages.DEFAULT_RULES)
    assert "The patient registered in the portal, in New → Onboarding" in described


def test_registered_then_first_reply_moves_the_patient_and_each_move_is_audited(clinic):
    event_id = handle(clinic, "account.registered")
    assert stage_of(clinic) == "onboarding"
    handle(clinic, "message.sent")
    assert stage_of(clinic) == "onboarding"
    handle(clinic, "message.replied")
    assert stage_of(clinic) == "active"
    moves = db.session.scalars(select(CareStageMove).order_by(CareStageMove.id)).all()
    assert [(m.from_stage, m.to_stage) for m in moves] == [("new", "onboarding"), ("onboarding", "active")]
    assert moves[0].event_id == event_id and moves[0].rule.event_kind == "account.registered"
    audited = db.session.execute(
        select(AuditEvent.resource_id, AuditEvent.patient_id).where(
            AuditEvent.action == "patient.care_stage_moved"
        )
    ).all()
    assert audited == [(str(moves[0].rule_id), clinic.patient.id), (str(moves[1].rule_id), clinic.patient.id)]


def test_only_the_first_time_counts_for_a_first_time_rule(clinic):
    handle(clinic, "message.replied")  # first reply while "new": → active
    assert stage_of(clinic) == "active"
    db.session.get(Patient, clinic.patient.id).care_stage = "onboarding"
    db.session.commit()
    handle(clinic, "message.replied", ("thread", 2))
    assert stage_of(clinic) == "onboarding"


def test_an_event_handled_twice_moves_once_and_a_disabled_rule_moves_nobody(clinic):
    event = clinic.event("account.registered")
    db.session.commit()
    assert events.handle_event(event.id, clinic.tenant.id)
    assert not events.handle_event(event.id, clinic.tenant.id)
    assert db.session.scalar(select(func.count()).select_from(CareStageMove)) == 1

    for rule in stages.stage_rules(clinic.tenant.id):
        rule.enabled = False
    db.session.get(Patient, clinic.patient.id).care_stage = "new"
    db.session.commit()
    handle(clinic, "account.registered")
    assert stage_of(clinic) == "new"


def test_an_any_stage_rule_and_a_patients_own_stage_first(clinic):
    stages.ensure_default_rules(clinic.tenant.id)
    db.session.add_all(
        [
            CareStageRule(
                tenant_id=clinic.tenant.id,
                event_kind="refill.requested",
                from_stage="*",
                to_stage="maintenance",
            ),
            CareStageRule(
                tenant_id=clinic.tenant.id, event_kind="refill.requested", from_stage="new", to_stage="active"
            ),
        ]
    )
    db.session.commit()
    handle(clinic, "refill.requested", ("refill", 1))
    assert stage_of(clinic) == "active"
    handle(clinic, "refill.requested", ("refill", 2))
    assert stage_of(clinic) == "maintenance"


def test_the_patient_page_shows_the_care_stage_history(clinic, signed_in):
    handle(clinic, "account.registered")
    page = signed_in(clinic.nurse).get(f"/patients/{clinic.patient.id}")
    html = page.get_data(as_text=True)
    assert "Care stage history" in html
    assert "The patient registered in the portal, in New → Onboarding" in html


# --- the settings page -------------------------------------------------------------------------------------


def test_the_settings_page_is_for_admins(clinic, signed_in):
    client = signed_in(clinic.nurse)
    assert client.get("/care/settings").status_code == 403


def test_rules_are_added_edited_and_turned_off(clinic, signed_in):
    client = signed_in(clinic.admin)
    assert client.get("/care/settings").status_code == 200
    added = client.post(
        "/care/settings/rules",
        data={"event_kind": "care_plan.acknowledged", "from_stage": "active", "to_stage": "maintenance"},
    )
    assert added.status_code == 303
    rule = db.session.scalar(
        select(CareStageRule).where(CareStageRule.event_kind == "care_plan.acknowledged")
    )
    assert (rule.from_stage, rule.to_stage, rule.first_time_only) == ("active", "maintenance", False)

    twice = client.post(
        "/care/settings/rules",
        data={"event_kind": "care_plan.acknowledged", "from_stage": "active", "to_stage": "discharged"},
    )
    assert twice.status_code == 422 and "exists already" in twice.get_data(as_text=True)

    edited = client.post(
        f"/care/settings/rules/{rule.id}",
        data={
            "event_kind": "care_plan.acknowledged",
            "from_stage": "*",
            "to_stage": "maintenance",
            "first_time_only": "1",
        },
    )
    assert edited.status_code == 303
    assert client.post(f"/care/settings/rules/{rule.id}/enabled", data={"enabled": "0"}).status_code == 303
    db.session.expire_all()
    rule = db.session.get(CareStageRule, rule.id)
    assert (rule.from_stage, rule.first_time_only, rule.enabled) == ("*", True, False)
    page = client.get(f"/care/settings?edit={rule.id}").get_data(as_text=True)
    assert "Edit the rule" in page and "Turn on" in page
    codes = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.resource_type == "care_stage_rule")
    ).all()
    assert codes == ["care.stage_rule_created", "care.stage_rule_changed", "care.stage_rule_disabled"]


def test_a_bad_rule_changes_nothing(clinic, signed_in):
    client = signed_in(clinic.admin)
    client.get("/care/settings")
    before = db.session.scalar(select(func.count()).select_from(CareStageRule))
    bad = client.post("/care/settings/rules", data={"event_kind": "x y", "to_stage": "active"})
    assert bad.status_code == 422
    same = client.post(
        "/care/settings/rules", data={"event_kind": "a.b", "from_stage": "active", "to_stage": "active"}
    )
    assert same.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(CareStageRule)) == before


def test_clinic_details_and_hours(clinic, signed_in):
    client = signed_in(clinic.admin)
    form = {"phone": "+1 (555) 010-2000", "address": "1 River Road, Springfield"}
    for day in range(5):
        form[f"opens_{day}"], form[f"closes_{day}"] = "09:00", "18:00"
    form["opens_5"], form["closes_5"] = "10:00", "13:00"
    assert client.post("/care/settings/clinic", data=form).status_code == 303
    db.session.expire_all()
    tenant = db.session.get(Tenant, clinic.tenant.id)
    assert tenant.phone == "+1 (555) 010-2000"
    assert tenant.hours["5"] == [["10:00", "13:00"]] and "6" not in tenant.hours

    bad = client.post("/care/settings/clinic", data={**form, "phone": "call me", "closes_1": "08:00"})
    assert bad.status_code == 422
    bad = client.post("/care/settings/clinic", data={**form, "closes_1": "08:00"})
    assert bad.status_code == 422 and "must close after it opens" in bad.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Tenant, clinic.tenant.id).hours["1"] == [["09:00", "18:00"]]


def test_response_targets(clinic, signed_in):
    client = signed_in(clinic.admin)
    ok = client.post(
        "/care/settings/targets", data={"target_message": "4", "target_refill": "", "target_default": "30"}
    )
    assert ok.status_code == 303
    rows = dict(db.session.execute(select(ResponseTarget.kind, ResponseTarget.hours)).all())
    assert rows == {"message": 4, "default": 30}
    bad = client.post("/care/settings/targets", data={"target_message": "0", "target_default": "30"})
    assert bad.status_code == 422
    bad = client.post("/care/settings/targets", data={"target_message": "4", "target_default": ""})
    assert bad.status_code == 422
    assert dict(db.session.execute(select(ResponseTarget.kind, ResponseTarget.hours)).all()) == rows
