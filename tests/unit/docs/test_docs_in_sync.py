from pathlib import Path

from apps.metrics.management.commands.metrics_catalogue import catalogue_markdown

ROOT = Path(__file__).resolve().parents[3]


def test_metrics_doc__catalogue_tables__match_the_code():
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    embedded = text.split("<!-- catalogue:start -->\n", 1)[1].split("<!-- catalogue:end -->", 1)[0]
    assert embedded.strip() == catalogue_markdown().strip()
