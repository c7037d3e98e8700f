from typing import Any

from django.core.management.base import BaseCommand

from apps.metrics.catalogue import CATALOGUE, Signal, render


def catalogue_markdown() -> str:
    """The catalogue as Markdown tables, one per framework (docs/metrics.md embeds it)."""
    out = []
    for framework, table in CATALOGUE.items():
        out.append(f"### {framework}\n")
        out.append("| signal | PromQL (`$sel`: deployment matchers, `$by`: identity labels) |")
        out.append("| --- | --- |")
        for signal in Signal:
            if signal not in table:
                continue
            template = table[signal]
            text = (
                "not exported"
                if template is None
                else "`"
                + render(template, sel="$sel, ", by="$by", window="$w").replace(", }", "}")
                + "`"
            )
            out.append(f"| {signal.value} | {text.replace('|', '&#124;')} |")
        out.append("")
    return "\n".join(out)


class Command(BaseCommand):
    help = "Print the metric catalogue as Markdown."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(catalogue_markdown())
