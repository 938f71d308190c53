"""What a share would show before it is made: the patient checks, on the "share my records" form, exactly
what the recipient will see.

The preview is the provider's view of an UNSAVED share: a ShareLink built like `create_shares` builds one
but never added to the session, read through the same `shared_content` (so a patient-made preview hides
what the patient may not see: hidden notes and addenda, held results). Nothing is written but the audit
event of the read: no share, no token, no email, no access log.
"""

from __future__ import annotations

from ..accounts.models import PATIENT
from ..audit.services import Actor, record_event
from ..clock import utcnow
from ..extensions import db
from .content import SharedContent, shared_content
from .models import SCOPE_RECORDS, SCOPE_TYPES, ShareLink
from .services import ShareErrors, ShareRequest, _patient_for, _problems

PREVIEW_ACTION = "share.preview"


def preview_share(actor: Actor, patient_id: int, request: ShareRequest) -> SharedContent:
    """The content a share made from `request` would show now. ShareErrors (every problem, each at its
    field: the same as sending) when the request would be refused; LookupError for a patient not the
    actor's to share."""
    patient = _patient_for(actor, patient_id)
    now = utcnow()
    (recipients, expires), problems = _problems(actor, patient, request, now)
    if problems:
        raise ShareErrors(problems)
    name, email = recipients[0]
    share = ShareLink(  # transient: never added to the session, so never written
        tenant_id=actor.tenant_id,
        patient_id=patient.id,
        created_by_id=actor.user_id,
        created_by_staff=actor.role != PATIENT,
        recipient_name=name,
        recipient_email=email,
        message=(request.message or "").strip() or None,
        scope=request.scope,
        scope_types=sorted(set(request.scope_types)) if request.scope == SCOPE_TYPES else None,
        scope_record_ids=sorted({int(i) for i in request.scope_record_ids})
        if request.scope == SCOPE_RECORDS
        else None,
        allow_download=False,  # a preview offers no download, whatever the share will allow
        verify_email=request.verify_email,
        max_opens=request.max_opens,
        max_downloads=request.max_downloads,
        expires_at=expires,
        created_at=now,
    )
    content = shared_content(share)
    # The patient reading their own records (staff: the patient's records), audited with the read.
    record_event(
        actor, PREVIEW_ACTION, resource_type="patient", resource_id=patient.id, patient_id=patient.id
    )
    db.session.commit()
    return content
