"""The rule checker's warnings, with exact figures, on a fixed price table and one clinic's versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from healthcrm.storage_cost.checker import break_even_months, check_rules, usd
from healthcrm.storage_cost.lifecycle import save_settings
from healthcrm.storage_cost.prices import ClassPrice, PriceTable
from tests.storage_cost.helpers import KB, add_record, add_version, make_clinic

MB = 1024 * KB
NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
LONG_AGO = (NOW - timedelta(days=300)).replace(tzinfo=None)  # the clinic's first files: 10 months of history

# Round prices, so the figures below can be checked by hand (GB = 2**30 bytes, 30-day months).
PRICES = PriceTable(
    classes={
        "STANDARD": ClassPrice(gb_month=0.02),
        "INTELLIGENT_TIERING": ClassPrice(gb_month=0.02, transition_per_1000=0.01),
        "STANDARD_IA": ClassPrice(gb_month=0.01, minimum_days=30, minimum_object_bytes=128 * KB),
        "GLACIER": ClassPrice(
            gb_month=0.004, transition_per_1000=0.05, minimum_days=90, overhead_bytes=32 * KB,
            standard_overhead_bytes=8 * KB,
        ),
        "DEEP_ARCHIVE": ClassPrice(
            gb_month=0.001, transition_per_1000=0.1, minimum_days=180, overhead_bytes=32 * KB,
            standard_overhead_bytes=8 * KB,
        ),
    },
    monitoring_per_1000=0.0025,
    put_per_1000=0.005,
    get_per_1000=0.0004,
)  # fmt: skip


@pytest.fixture
def clinic(app):
    """A clinic with files of each kind the checks look at (rows only: the checker reads no object)."""
    with time_machine.travel(NOW, tick=False):
        clinic = make_clinic()
        final, draft = add_record(clinic), add_record(clinic, status="draft")
        for _ in range(10):  # small: 64 KB
            add_version(clinic, final, size=64 * KB, created_at=LONG_AGO, store=False)
        for _ in range(100):  # 128 KB, on the edge: archived, but slow to pay back
            add_version(clinic, final, size=128 * KB, created_at=LONG_AGO, store=False)
        for _ in range(10):  # 2 MB: quick to pay back, no warning
            add_version(clinic, final, size=2 * MB, created_at=LONG_AGO, store=False)
        # Two 2 MB files replaced: one on day 100 (in GLACIER since day 90), one on day 200 (in DEEP_ARCHIVE
        # since day 180).
        for age in (100, 200):
            first = add_version(clinic, final, size=2 * MB, created_at=LONG_AGO, store=False)
            add_version(
                clinic, final, size=2 * MB, attachment=first.attachment,
                created_at=LONG_AGO + timedelta(days=age), store=False,
            )  # fmt: skip
        for _ in range(20):  # Intelligent-Tiering, 200 KB, on a draft (not archived by the rule)
            add_version(clinic, draft, size=200 * KB, storage_class="INTELLIGENT_TIERING", store=False)
        add_version(clinic, draft, size=300 * KB, storage_class="INTELLIGENT_TIERING", store=False)
        yield clinic


def _by_title(warnings):
    return {warning.title: warning for warning in warnings}


def test_the_four_checks_with_their_figures(clinic):
    warnings = check_rules(clinic.id, prices=PRICES, now=NOW.replace(tzinfo=None))
    rule = f"healthcrm-clinic-{clinic.id}-archive"
    assert [(w.rule_id, w.title) for w in warnings] == [
        (rule, "10 files under 128 KB stay out of archiving"),
        (rule, "Files of 128 KB–256 KB pay back their transitions only after 70.9 months"),
        (rule, "2 files were replaced within the minimum storage time after the archiving day"),
        (
            "uploads-intelligent-tiering",
            "Intelligent-Tiering's monitoring fee outweighs its saving on 20 files under 262.1 KB",
        ),
    ]
    small, fees, durations, monitoring = warnings

    # 10 × 64 KB in STANDARD: 655,360 B × $0.02 / 2^30 B = $0.0000122070 a month. In GLACIER:
    # 655,360 B × $0.004 / 2^30 + 10 × (32 KB × $0.004 + 8 KB × $0.02) / 2^30
    # = $0.00000244141 + $0.00000274658.
    # Transitions: 10 × $0.05 / 1000 = $0.0005, paid back by the $0.00000701904 a month in 71.2 months.
    assert small.figures == {
        "objects": 10,
        "bytes": 655360,
        "monthly_now": 1.2207e-05,
        "monthly_if_archived": 5.18799e-06,
        "metadata_monthly": 2.74658e-06,
        "transition_fees": 0.0005,
        "months_to_break_even": 71.2348,
    }
    assert small.monthly_cost_change == 0.0  # the tag keeps them out

    # 100 × 128 KB: each saves 131,072 × (0.02 − 0.004) / 2^30 − 294.912 / 2^30 = $0.00000167847 a month in
    # GLACIER, $0.00000213623 in DEEP_ARCHIVE (metadata 196.608 / 2^30), after fees of $0.00005 and $0.0001:
    # −0.00005 + 3 × 0.00000167847 − 0.0001 = −0.000144965 after 3 months, then 67.86 months more.
    assert fees.figures == {
        "size_bucket": "128 KB–256 KB",
        "objects": 100,
        "bytes": 13107200,
        "transition_fees": 0.015,
        "monthly_saving_glacier": 0.000167847,
        "monthly_saving_deep_archive": 0.000213623,
        "months_to_break_even": 70.86,
    }
    # Over the first 12 months: (0.00005 + 0.0001 − 3 × 0.00000167847 − 9 × 0.00000213623) × 100 / 12.
    assert fees.monthly_cost_change == pytest.approx(
        100 * (0.00015 - 3 * 1.678466796875e-06 - 9 * 2.13623046875e-06) / 12, rel=1e-5
    )
    assert fees.monthly_cost_change == 0.00104782

    # Replaced on day 100: 80 days of GLACIER's 90 left: 80/30 × (2 MB + 32 KB) / 2^30 × $0.004; on day 200:
    # 160 days of DEEP_ARCHIVE's 180: 160/30 × (2 MB + 32 KB) / 2^30 × $0.001. Over 10 months of history.
    assert durations.figures == {
        "replaced_versions": 2,
        "early_glacier": 1,
        "early_deep_archive": 1,
        "early_deletion_charges": 3.17383e-05,
        "history_months": 10.0,
        "monthly": 3.17383e-06,
    }
    assert durations.monthly_cost_change == 3.17383e-06

    # Monitoring: $0.0025 / 1000 objects; the Infrequent tier saves (0.02 − 0.01) / 2^30 a byte, so below
    # 0.0000025 / (0.01 / 2^30) = 268,435 B the fee is more than the saving: 20 files of 200 KB (not the
    # 300 KB one).
    assert monitoring.figures == {
        "objects": 20,
        "bytes": 4096000,
        "break_even_bytes": 268435,
        "monitoring_fee": 5e-05,
        "best_saving": 3.8147e-05,
    }
    assert monitoring.monthly_cost_change == 1.1853e-05
    assert "which charges $0.000050 a month to watch them" in monitoring.detail
    assert "would save them only $0.000038 a month" in monitoring.detail


def test_the_words_carry_the_figures(clinic):
    warnings = _by_title(check_rules(clinic.id, prices=PRICES, now=NOW.replace(tzinfo=None)))
    small = warnings["10 files under 128 KB stay out of archiving"]
    assert small.detail == (
        "10 files (640 KB in all) are under 128 KB: Intelligent-Tiering never moves them to a cheaper tier, "
        "and the archive tag keeps them out of this rule. They cost $0.000012 a month now. In GLACIER they "
        "would cost $0.0000052 a month, $0.0000027 of it the 40 KB of metadata each archived file carries, "
        "plus $0.00050 once for the transitions: paid back after 71.2 months."
    )


def test_later_settings_change_the_warnings(clinic, inline_jobs):
    # Archiving on day 210 instead of 90: the files replaced on days 100 and 200 were never archived.
    save_settings(
        clinic.actor(),
        {"glacier_days": "210", "deep_archive_days": "400", "recent_days": "30", "enabled": "on"},
    )
    warnings = _by_title(check_rules(clinic.id, prices=PRICES, now=NOW.replace(tzinfo=None)))
    assert not any("replaced" in title for title in warnings)
    # A longer stay in GLACIER (190 days) before DEEP_ARCHIVE: the 128 KB files still take years.
    [fees] = [w for title, w in warnings.items() if title.startswith("Files of")]
    assert fees.figures["months_to_break_even"] == pytest.approx(
        break_even_months(0.00005, 0.0001, 1.678466796875e-06, 2.13623046875e-06, 190 / 30), rel=1e-5
    )


def test_amounts_in_words():
    assert [usd(x) for x in (0, 1234.5, 0.012, 0.0099, 0.00005, 1.2207e-05, -0.0004, 1e-12)] == [
        "$0.00", "$1,234.50", "$0.01", "$0.0099", "$0.000050", "$0.000012", "-$0.00040",
        "less than $0.0000000001",
    ]  # fmt: skip


def test_break_even_months():
    # Paid back within GLACIER's stay: fee / saving.
    assert break_even_months(0.03, 0.05, 0.01, 0.02, 10) == pytest.approx(3.0)
    # Not: after both fees, what is left is earned in DEEP_ARCHIVE.
    assert break_even_months(0.03, 0.05, 0.01, 0.02, 3) == pytest.approx(3 + 0.05 / 0.02)
    # A saving that never comes.
    assert break_even_months(0.03, 0.05, -0.001, -0.001, 3) is None


def test_a_clinic_without_files_has_no_warnings(app):
    assert check_rules(make_clinic().id, prices=PRICES) == []


def test_the_page_shows_the_warnings(clinic, client, app):
    from tests.factories import login

    login(client, clinic.admin.email)
    body = client.get("/admin/storage/lifecycle").get_data(as_text=True)
    assert "files under 128 KB stay out of archiving" in body
    assert "pay back their transitions only after" in body
