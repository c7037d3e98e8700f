"""Channel templates move from Django's template language to Jinja2 (sandboxed).

Stored overrides are converted where the change is mechanical — ``forloop.*`` becomes
``loop.*``, ``{% empty %}`` becomes ``{% else %}``, filter arguments ``|f:"x"`` become
``|f("x")`` — and kept only if the result compiles in the sandbox. Anything else is left as
it was: it no longer compiles, so notifications use the built-in template (and say so in
the log) until someone edits it.
"""

import re

from django.db import migrations

_FORLOOP = {
    "forloop.counter0": "loop.index0",
    "forloop.counter": "loop.index",
    "forloop.revcounter0": "loop.revindex0",
    "forloop.revcounter": "loop.revindex",
    "forloop.first": "loop.first",
    "forloop.last": "loop.last",
}
_FILTER_ARG = re.compile(r"\|(\w+):(\"[^\"]*\"|'[^']*'|[\w.]+)")


def _convert(text: str) -> str:
    for old, new in _FORLOOP.items():
        text = text.replace(old, new)
    text = re.sub(r"{%-?\s*empty\s*-?%}", "{% else %}", text)
    return _FILTER_ARG.sub(lambda m: f"|{m.group(1)}({m.group(2)})", text)


def _to_jinja(apps, schema_editor):
    from apps.integrations.chat.rendering import parse_template

    Channel = apps.get_model("alerts", "Channel")
    for channel in Channel.objects.exclude(body_template="", title_template=""):
        changed = []
        for field in ("title_template", "body_template"):
            text = getattr(channel, field)
            if not text:
                continue
            try:
                parse_template(text)
                continue  # already valid Jinja
            except ValueError:
                pass
            converted = _convert(text)
            try:
                parse_template(converted)
            except ValueError:
                continue
            setattr(channel, field, converted)
            changed.append(field)
        if changed:
            channel.save(update_fields=changed)


class Migration(migrations.Migration):
    dependencies = [("alerts", "0002_alert_identity_per_team")]

    operations = [migrations.RunPython(_to_jinja, migrations.RunPython.noop, elidable=True)]
