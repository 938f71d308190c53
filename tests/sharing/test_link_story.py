"""What the patient is told about a new link is what the links do: two links of one share (the one shown,
the one emailed), both working until the same minute, shown with its hour and the clinic's zone on every
page and in every email; revoking stops both, "Send again" replaces only the emailed one."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import default as default_policy

import pytest
import time_machine

from healthcrm.sharing import services
from healthcrm.sharing.models import ShareLink
from tests.factories import login, make_portal_user, make_tenant, make_user
from tests.sharing.factories import make_shared_patient

HX = {"HX-Request": "true"}
LINK = re.compile(r"/s/([A-Za-z0-9_-]{40,})")
# 15:46 in Chicago (the factories' clinics), thirty days before the end of the year.
SHARED_AT = datetime(2026, 12, 1, 21, 46, tzinfo=UTC)
ENDS = "31 Dec 2026, 15:46 CST"


@pytest.fixture
def shared(app, client, inline_jobs, outbox_dir):
    """A patient shares everything for 30 days at SHARED_AT: the answer's HTML, the shown and the emailed
    token, the share and its email. The test runs at SHARED_AT too (a minute later, ticking), so that it
    passes on any date: on its own clock the share would have ended after 31 Dec 2026."""
    tenant = make_tenant("Lakeside Liver Clinic")
    patient = make_shared_patient(tenant, make_user(tenant, "doctor"))
    portal = make_portal_user(patient)
    with time_machine.travel(SHARED_AT, tick=False):
        login(client, portal.email)
        answer = client.post(
            "/portal/shares/new",
            data={
                "recipients-0-name": "Dr. Ana Ruiz",
                "recipients-0-email": "ana.ruiz@hospital.example.com",
                "scope": "all",
                "days": "30",
            },
            headers=HX,
        )
    assert answer.status_code == 200
    html = answer.get_data(as_text=True)
    [message] = [
        BytesParser(policy=default_policy).parsebytes(path.read_bytes()) for path in outbox_dir.glob("*.eml")
    ]
    [shown] = set(LINK.findall(html))
    [emailed] = LINK.findall(message.get_body(preferencelist=("plain",)).get_content())
    with time_machine.travel(SHARED_AT + timedelta(minutes=1), tick=True):
        yield {
            "html": html,
            "shown": shown,
            "emailed": emailed,
            "share": services.resolve(shown),
            "message": message,
            "patient": patient,
            "tenant": tenant,
        }


def test_the_created_page_tells_the_two_links_story_and_the_end_to_the_minute(shared):
    html = shared["html"]
    assert "shown only once" not in html
    assert "two links to the same records" in html
    assert "Revoking the share stops both" in html
    assert f"Works until <strong>{ENDS}</strong>" in html


def test_the_email_says_the_same_end_and_keeps_names_and_health_out_of_its_subject(shared):
    message, patient = shared["message"], shared["patient"]
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    assert f"the link works until {ENDS}" in text
    assert f"The link works until {ENDS}" in html
    subject = str(message["Subject"])
    assert subject == "A secure link was shared with you"
    for secret in (patient.first_name, patient.last_name, shared["tenant"].name, "Liver", "Dr. Ana Ruiz"):
        assert secret not in subject
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_both_links_open_until_the_end_and_revoking_stops_both(shared, client):
    share = shared["share"]
    for token in (shared["shown"], shared["emailed"]):
        assert services.resolve(token).id == share.id
    with time_machine.travel(datetime(2026, 12, 31, 21, 45, tzinfo=UTC), tick=False):
        landing = client.get(f"/s/{shared['emailed']}")
        assert landing.status_code == 200
        assert ENDS in landing.get_data(as_text=True)
        assert services.resolve(shared["shown"]) is not None
    with time_machine.travel(datetime(2026, 12, 31, 21, 46, 1, tzinfo=UTC), tick=False):
        assert services.resolve(shared["shown"]) is None
        assert services.resolve(shared["emailed"]) is None
    with time_machine.travel(SHARED_AT, tick=False):
        listing = client.get("/portal/shares").get_data(as_text=True)
        assert f"<dd>{ENDS}</dd>" in listing
        assert "the link shown to you keeps working. Revoke stops both." in listing
        assert client.post(f"/shares/{share.id}/revoke", data={}).status_code == 303
        for token in (shared["shown"], shared["emailed"]):
            assert services.resolve(token) is None
            assert client.get(f"/s/{token}").status_code == 404
        revoked = client.get("/portal/shares").get_data(as_text=True)
    assert "<dt>Revoked</dt><dd>01 Dec 2026, 15:46 CST</dd>" in revoked


def test_send_again_replaces_only_the_emailed_link(shared, client, outbox_dir):
    share = shared["share"]
    with time_machine.travel(SHARED_AT, tick=False):
        assert client.post(f"/shares/{share.id}/send", data={}).status_code == 303
    assert services.resolve(shared["emailed"]) is None
    assert services.resolve(shared["shown"]).id == share.id
    assert isinstance(share, ShareLink)


def test_the_provider_view_shows_the_end_with_its_hour_and_zone(shared, client):
    with time_machine.travel(SHARED_AT, tick=False):
        token = shared["emailed"]
        client.post(f"/s/{token}", data={})
        client.get(f"/s/{token}/check")
        page = client.get(f"/s/{token}/summary")
    assert page.status_code == 200
    assert f"open until {ENDS}" in page.get_data(as_text=True)
