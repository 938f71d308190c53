"""The route × role matrix: every endpoint declares who may open it, and the app enforces it."""

from __future__ import annotations

import pytest
from flask import Flask

from healthcrm.access import Policy, policy_for
from healthcrm.accounts.models import ADMIN, ALL_ROLES, PATIENT, STAFF_ROLES
from tests.factories import login, make_patient, make_portal_user, make_tenant, make_user

ANONYMOUS = "anonymous"
# Endpoints whose URL needs a token or a name that only exists at run time; their policy is still checked.
DUMMY_ARGS = {"int": "999999", "default": "not-a-real-value", "string": "not-a-real-value", "path": "x"}


def _routes(app: Flask):
    for rule in app.url_map.iter_rules():
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        yield rule, methods


def test_every_route_declares_an_access_policy(app):
    missing = [rule.endpoint for rule, _ in _routes(app) if policy_for(rule.endpoint) is None]
    assert missing == [], f"routes without an access policy: {missing}"


@pytest.mark.own_app  # it adds a route
def test_a_route_without_a_policy_is_refused(app, client):
    app.add_url_rule("/forgotten", "forgotten", lambda: "secret")
    assert policy_for("forgotten") is None
    response = client.get("/forgotten")
    assert response.status_code == 404
    assert b"secret" not in response.data


def _url_for_rule(rule, own_patient_id: int) -> str:
    url = rule.rule
    for argument in rule.arguments:
        converter = type(rule._converters[argument]).__name__.replace("Converter", "").lower()
        if converter == "integer":
            value = str(own_patient_id) if argument == "patient_id" else "999999"
        else:
            value = DUMMY_ARGS.get(converter, "not-a-real-value")
        url = url.replace(f"<{rule._converters[argument].__class__.__name__}:{argument}>", value)
        for prefix in ("int:", "string:", "path:", ""):
            url = url.replace(f"<{prefix}{argument}>", value)
    return url


@pytest.fixture
def people(app):
    tenant = make_tenant()
    patient = make_patient(tenant)
    users = {role: make_user(tenant, role) for role in ALL_ROLES if role != "patient"}
    users["patient"] = make_portal_user(patient)
    return tenant, patient, users


@pytest.mark.parametrize("role", [ANONYMOUS, *ALL_ROLES])
def test_route_role_matrix(app, client, people, role):
    """Every GET route answers each role as its policy says: allowed, 403, or the sign-in page."""
    _, patient, users = people
    if role != ANONYMOUS:
        assert login(client, users[role].email).status_code == 303
    checked = 0
    for rule, methods in _routes(app):
        if "GET" not in methods or rule.endpoint == "static" or rule.endpoint == "accounts.login_mfa":
            continue
        policy: Policy = policy_for(rule.endpoint)
        response = client.get(_url_for_rule(rule, patient.id))
        checked += 1
        location = response.headers.get("Location", "")
        if policy.public:
            assert response.status_code != 403, rule.endpoint
            assert "/login?next" not in location, rule.endpoint
        elif role == ANONYMOUS and policy.tokens:
            # An API endpoint: 401 in JSON with the scheme to use, never a redirect to a sign-in page.
            assert response.status_code == 401 and response.is_json, rule.endpoint
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), rule.endpoint
        elif role == ANONYMOUS:
            assert response.status_code == 302 and "/login" in location, rule.endpoint
        elif policy.allows(role):
            assert response.status_code in {200, 302, 303, 404}, (rule.endpoint, response.status_code)
            assert "/login" not in location, rule.endpoint
        else:
            assert response.status_code == 403, (rule.endpoint, role, response.status_code)
            assert response.is_json == policy.tokens, rule.endpoint
    assert checked > 10


@pytest.mark.parametrize("role", ["doctor", "front_desk", "coach", "patient"])
def test_post_routes_refuse_roles_outside_their_policy(app, client, people, role):
    _, patient, users = people
    login(client, users[role].email)
    for rule, methods in _routes(app):
        if "POST" not in methods:
            continue
        policy = policy_for(rule.endpoint)
        if policy.public or policy.allows(role):
            continue
        response = client.post(_url_for_rule(rule, patient.id), data={})
        assert response.status_code == 403, (rule.endpoint, role, response.status_code)


def test_other_clinics_patient_answers_404(app, client):
    mine, theirs = make_tenant(), make_tenant()
    doctor = make_user(mine, "doctor")
    other_patient = make_patient(theirs, last_name="Elsewhere")
    login(client, doctor.email)
    for url in (f"/patients/{other_patient.id}", f"/patients/{other_patient.id}/edit"):
        response = client.get(url)
        assert response.status_code == 404
        assert b"Elsewhere" not in response.data
    response = client.post(f"/patients/{other_patient.id}/edit", data={"first_name": "X"})
    assert response.status_code == 404
    response = client.post(f"/patients/{other_patient.id}/invite", data={"email": "a@b.example"})
    assert response.status_code == 404


def test_every_role_set_on_a_route_comes_from_the_permission_table_or_a_kind_of_person(app):
    """No view copies a role set: a policy names permissions (`@requires`), or opens to a whole kind of
    person (public, any signed-in person, staff, patients, admins)."""
    kinds = {
        frozenset(ALL_ROLES),
        frozenset(STAFF_ROLES),
        frozenset({PATIENT}),
        frozenset({ADMIN}),
    }
    copied = []
    for rule, _ in _routes(app):
        policy = policy_for(rule.endpoint)
        if policy.public or policy.permissions:
            continue
        if policy.roles not in kinds:
            copied.append(rule.endpoint)
    assert copied == [], f"routes with a role set of their own: {copied}"
