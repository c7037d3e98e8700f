"""The one error type of the LogQL package: what an HTTP layer answers with 400."""

from __future__ import annotations


class LogQLError(ValueError):
    """The query is refused. ``offset`` (0-based, in characters), ``line`` and ``column``
    (1-based) say where, when the error has a place in the text; the message names it too:
    ``parse error at line 1, col 12: syntax error: unexpected "}", expecting a label name``.
    """

    def __init__(self, message: str, *, text: str | None = None, offset: int | None = None):
        self.reason = message
        self.offset = offset
        self.line: int | None = None
        self.column: int | None = None
        if text is not None and offset is not None:
            before = text[:offset]
            self.line = before.count("\n") + 1
            self.column = offset - (before.rfind("\n") + 1) + 1
            message = f"parse error at line {self.line}, col {self.column}: {message}"
        super().__init__(message)


class PipelineError(LogQLError):
    """A metric query met an entry its pipeline could not process (``__error__`` is set)
    and the query did not filter such entries out; Loki refuses the query the same way."""
