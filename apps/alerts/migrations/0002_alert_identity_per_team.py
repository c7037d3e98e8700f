"""Alerts are identified per team (team + fingerprint) instead of by fingerprint alone.

The old global unique fingerprint means existing rows cannot collide under the new
constraints. What the old ingestion could leave behind is an alert attached to another
team's deployment (the ``deployment`` label was resolved across teams): those links are
cleared, and such alerts are taken out of groups of routes of a team other than their own.
"""

from django.db import migrations, models
from django.db.models import F


def _detach_cross_team(apps, schema_editor):
    Alert = apps.get_model("alerts", "Alert")
    AlertGroup = apps.get_model("alerts", "AlertGroup")
    Alert.objects.filter(deployment__isnull=False).exclude(
        deployment__team_id=F("team_id")
    ).update(deployment=None)
    through = AlertGroup.alerts.through
    through.objects.exclude(alert__team_id=F("alertgroup__route__team_id")).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0001_initial"),
        ("alerts", "0001_initial"),
        ("inventory", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(_detach_cross_team, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="alert",
            name="fingerprint",
            field=models.CharField(
                db_index=True,
                help_text="Of the label set (unique within the team).",
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="channel",
            name="body_template",
            field=models.TextField(
                blank=True,
                help_text="Override of the body template (Jinja2 syntax, sandboxed and "
                "bounded; see docs/alerts.md).",
            ),
        ),
        migrations.AlterField(
            model_name="channel",
            name="title_template",
            field=models.TextField(
                blank=True,
                help_text="Override of the title template (Jinja2 syntax, sandboxed and "
                "bounded; see docs/alerts.md).",
            ),
        ),
        migrations.AddConstraint(
            model_name="alert",
            constraint=models.UniqueConstraint(
                fields=("team", "fingerprint"), name="alerts_alert_unique_team_fingerprint"
            ),
        ),
        migrations.AddConstraint(
            model_name="alert",
            constraint=models.UniqueConstraint(
                condition=models.Q(("team__isnull", True)),
                fields=("fingerprint",),
                name="alerts_alert_unique_teamless_fingerprint",
            ),
        ),
    ]
