"""The logs admin: team log settings are audited like every change; streams are read only."""

from __future__ import annotations

from django.test import Client
from django.utils.html import escape

from apps.audit.models import AuditEntry
from apps.logs.models import LogStream, TeamLogSettings


def test_team_log_settings_added_in_admin__stored_and_audited(roster):
    browser = Client()
    browser.force_login(roster.superuser)

    response = browser.post(
        "/admin/logs/teamlogsettings/add/",
        {"team": roster.team.pk, "retention_days": "30", "_save": "Save"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert TeamLogSettings.objects.get(team=roster.team).retention_days == 30
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.source, entry.team_id) == ("create", "admin", roster.team.pk)


def test_team_log_settings__retention_below_one_day__refused(roster):
    browser = Client()
    browser.force_login(roster.superuser)

    response = browser.post(
        "/admin/logs/teamlogsettings/add/",
        {"team": roster.team.pk, "retention_days": "0", "_save": "Save"},
    )

    assert response.status_code == 200
    assert not TeamLogSettings.objects.exists()


def test_log_streams_admin__listed__no_add_or_delete(roster):
    LogStream.objects.create(
        team=roster.team,
        fingerprint="f" * 64,
        labels={"app": "api"},
        first_seen_ns=0,
        last_seen_ns=60 * 10**9,
    )
    browser = Client()
    browser.force_login(roster.superuser)

    listing = browser.get("/admin/logs/logstream/")

    assert listing.status_code == 200
    assert escape('{app="api"}') in listing.content.decode()
    assert browser.get("/admin/logs/logstream/add/").status_code == 403
