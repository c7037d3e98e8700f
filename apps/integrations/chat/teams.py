"""Microsoft Teams through a Workflows (Power Automate) webhook —
https://support.microsoft.com/en-us/office/create-incoming-webhooks-with-workflows-for-microsoft-teams-8ae491c7-0394-4861-ba59-055e33f75498

The workflow "Post to a channel when a webhook request is received" takes
``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <Adaptive Card>}]}``. The card is
Adaptive Card 1.4 (https://adaptivecards.io/explorer/): a title ``TextBlock``, a ``FactSet``
with status, counts and the group labels, one ``TextBlock`` per body line (Teams supports a
markdown subset in TextBlocks: bold, italic, links) and an ``Action.OpenUrl`` to the
console. Teams limits a message to about 28 KB
(https://learn.microsoft.com/en-us/microsoftteams/platform/bots/how-to/format-your-bot-messages);
we keep the JSON body under 28,000 bytes.

The workflow answers 202 Accepted. Failures are HTTP errors with an ``{"error": {"code",
"message"}}`` body: 400 a malformed request, 401/403 a bad ``sig`` in the URL, 404 a deleted
or disabled workflow, 429 with ``Retry-After`` when throttled. The retired Office 365
connectors answered 200 with an error text instead; that is read too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Rule, Transport, fit_text, http_status_rule, json_bytes
from .messages import Notification
from .rendering import UI, Rendered, clip, severity_label

__all__ = ["TeamsTransport"]

_MAX_BODY_BYTES = 28_000
_FACT_MAX_CHARS = 200
_GROUP_FACTS = 10
_GROUP_FACTS_HARD = 3


class TeamsTransport(Transport):
    kind = "teams"
    display_name = "Microsoft Teams"
    template_name = "teams.md"
    default_retry_after_s = 30.0
    # Workflow trigger URLs: https://<env>.environment.api.powerplatform.com/powerautomate/…
    # since Microsoft moved them in 2025, https://prod-NN.<region>.logic.azure.com/workflows/…
    # before (e.g. the Get-AzLogicAppTriggerCallbackUrl example,
    # https://learn.microsoft.com/powershell/module/az.logicapp/get-azlogicapptriggercallbackurl,
    # and https://learn.microsoft.com/en-us/answers/questions/5606972/your-flow-has-a-new-trigger-url).
    platform_hosts = ("*.environment.api.powerplatform.com", "*.logic.azure.com")

    def _card(
        self, notification: Notification, title: str, body: str, group_facts: int
    ) -> dict[str, Any]:
        n = notification
        ui = UI[n.language]
        facts = [{"title": ui["status"], "value": ui[n.status]}]
        if n.severity:
            facts.append({"title": ui["severity"], "value": severity_label(n.severity, n.language)})
        facts.append({"title": ui["firing_count"], "value": str(n.firing_count)})
        facts.append({"title": ui["resolved_count"], "value": str(n.resolved_count)})
        facts += [
            {"title": clip(k, _FACT_MAX_CHARS), "value": clip(v, _FACT_MAX_CHARS)}
            for k, v in list(n.group_labels.items())[:group_facts]
        ]
        blocks: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "text": title,
                "size": "Large",
                "weight": "Bolder",
                "wrap": True,
                "color": "Attention" if n.status == "firing" else "Good",
            },
            {"type": "FactSet", "facts": facts},
        ]
        # One TextBlock per line: a lone "\n" inside a TextBlock is not a line break in
        # every Teams client, and a blank line becomes extra spacing.
        spacing = "Medium"
        for line in body.split("\n"):
            if not line.strip():
                spacing = "Medium"
                continue
            blocks.append({"type": "TextBlock", "text": line, "wrap": True, "spacing": spacing})
            spacing = "None"
        content: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "msteams": {"width": "Full"},
            "body": blocks,
        }
        console = self.escape_url(n.console_url)
        if console:
            content["actions"] = [
                {"type": "Action.OpenUrl", "title": ui["open_console"], "url": console}
            ]
        return {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": content,
                }
            ],
        }

    def build(
        self, notification: Notification, rendered: Rendered, *, hard: bool
    ) -> dict[str, Any]:
        if not hard:
            return self._card(notification, rendered.title, rendered.body, _GROUP_FACTS)
        return fit_text(
            lambda body: self._card(notification, rendered.title, body, _GROUP_FACTS_HARD),
            rendered.body,
            max_bytes=_MAX_BODY_BYTES,
            language=notification.language,
            within=self.within_limits,
        )

    def within_limits(self, payload: Mapping[str, Any]) -> bool:
        return len(json_bytes(payload)) <= _MAX_BODY_BYTES

    def classify(self, status: int, text: str, data: Any) -> Rule | None:
        if 200 <= status < 300:
            # Office 365 connectors reported failures inside a 200 answer.
            if "HTTP error 429" in text:
                return Rule("rate limited by Teams", permanent=False, rate_limited=True)
            if text.startswith("Webhook message delivery failed"):
                return Rule("Teams reported that it did not deliver the message", permanent=False)
            return None
        generic = http_status_rule(status)
        if generic is None:
            return None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and error.get("code"):
            code = str(error["code"])
            message = clip(" ".join(str(error.get("message", "")).split()), 200)
            return Rule(
                f"{generic.reason}: {code} {message}".rstrip(),
                permanent=generic.permanent,
                rate_limited=generic.rate_limited,
                code=code,
            )
        if status in (401, 403):
            return Rule(
                "the workflow rejected the URL's signature; copy the URL again from the "
                f"workflow's trigger (HTTP {status})",
                permanent=True,
            )
        if status == 404:
            return Rule(
                "the workflow does not exist any more (deleted or turned off) (HTTP 404)",
                permanent=True,
            )
        return None
