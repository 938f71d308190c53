"""A browser's User-Agent in words ("Chrome on Android"), for the sessions page and a share's access log.

A name is all either page needs: which browser on which kind of device, to recognise one's own or spot a
stranger's. The full string stays stored beside it (and in a tooltip) for whoever needs more.
"""

from __future__ import annotations

UNKNOWN = "Unknown browser"
SHOWN_MAX_CHARS = 40  # of a User-Agent no rule names

# Order matters: each browser's string also carries the names of those it descends from. Edge, Opera,
# Samsung Internet and Chromium also say "Chrome"; Chrome and Firefox on iOS say "Safari"; Chrome says
# "Safari" too.
BROWSERS = (
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
# iPhones and iPads also say "Mac OS X"; Android also says "Linux".
SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_user_agent(user_agent: str | None) -> str:
    """ "Firefox on Windows", "Safari on iPhone"; a browser or a system alone when only one is known; else
    the start of the string itself (printable characters only)."""
    if not user_agent or not user_agent.strip():
        return UNKNOWN
    browser = next((name for marker, name in BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system
    shown = " ".join("".join(ch if ch.isprintable() else " " for ch in user_agent).split())
    return shown[:SHOWN_MAX_CHARS] or UNKNOWN
