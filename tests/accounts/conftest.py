"""Fixtures for the accounts tests: the emails people receive."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path

import pytest


class Outbox:
    """The emails the app has sent so far (after waiting for the jobs that send them)."""

    def __init__(self, folder: Path, drain_jobs):
        self.folder = folder
        self.drain_jobs = drain_jobs

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        self.drain_jobs()
        found = []
        for path in sorted(self.folder.glob("*.eml")):
            with path.open("rb") as handle:
                message = BytesParser(policy=default_policy).parse(handle)
            if to is None or message["To"] == to:
                found.append(message)
        return found

    def links(self, to: str, kind: str) -> list[str]:
        """Every `/<kind>/<token>` path mailed to `to`, as the app-relative path a browser would open."""
        pattern = re.compile(rf"https?://[^/\s]+(/{kind}/[A-Za-z0-9_\-]+)")
        paths = []
        for message in self.messages(to):
            paths.extend(pattern.findall(text_of(message)))
        return paths

    def link(self, to: str, kind: str) -> str:
        links = self.links(to, kind)
        assert len(links) == 1, f"expected one /{kind}/ link for {to}, found {links}"
        return links[0]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return body.get_content()


@pytest.fixture
def outbox(app, outbox_dir, drain_jobs) -> Outbox:
    return Outbox(outbox_dir, drain_jobs)
