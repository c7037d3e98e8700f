"""A bounded Jinja2 sandbox for notification templates that channel owners write.

Jinja2's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` already keeps a template
away from Python internals (no ``__class__``, no private attributes, no mutation of lists
and dicts). A template can still ask for a lot of work or memory with nothing but safe
operations — nested loops, ``"x" * 10**9``, ``"x".ljust(10**9)``, ``"{:>999999999}"``,
``a ~ a`` repeated — so every render here also runs within a :class:`Limits` budget:

- **no other templates**: ``include``, ``import``, ``from`` and ``extends`` are refused when
  the template is compiled, and the loader finds nothing;
- **steps**: every loop iteration, every call (function, method, macro) and every piece of
  output is a step; a render stops after ``steps`` of them, or after ``time_s`` seconds;
- **output**: every character produced counts — also inside macros, ``{% set %}`` and
  ``{% filter %}`` blocks — and a render stops producing at ``output_chars``;
- **values**: no string or list built by an operator (``+ * % ~``), a filter or a method
  can be larger than ``value_chars``, and the size is checked *before* it is built where
  the operation can say how large the result will be; ``range()`` gives at most
  ``range_items`` numbers; integer powers stay small;
- **methods**: strings, lists and dicts offer only a fixed list of read-only methods
  (``str.format`` is not one of them: a width in a format spec allocates before any check).

These limits guard the control plane, not the chat platform: a message still has to fit the
platform's own limit, which the transports enforce after rendering.
"""

from __future__ import annotations

import contextvars
import math
import operator
import re
import time
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, FunctionLoader, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.environment import Environment
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.filters import FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "NotificationSandbox",
    "RenderBudget",
    "TemplateLimitError",
    "render_bounded",
]


@dataclass(frozen=True)
class Limits:
    """What one render may use (see the module docstring)."""

    source_chars: int = 16_000
    output_chars: int = 64 * 1024
    value_chars: int = 64 * 1024
    steps: int = 20_000
    range_items: int = 1_000
    time_s: float = 2.0


DEFAULT_LIMITS = Limits()


class TemplateLimitError(SecurityError):
    """A render went over one of its :class:`Limits`."""


class OutputLimitReached(TemplateLimitError):
    """The render produced ``output_chars`` characters; what was produced before is kept."""


class RenderBudget:
    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.steps = 0
        self.produced = 0
        self._clock = clock
        self._deadline = clock() + limits.time_s

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.limits.steps:
            raise TemplateLimitError(
                f"the template takes more than {self.limits.steps:,} steps (loop iterations, "
                "calls and outputs) to render"
            )
        if self._clock() > self._deadline:
            raise TemplateLimitError(
                f"the template takes longer than {self.limits.time_s:g} s to render"
            )

    def produce(self, chars: int) -> None:
        self.step()
        if self.produced + chars > self.limits.output_chars:
            raise OutputLimitReached(
                f"the template produces more than {self.limits.output_chars:,} characters"
            )
        self.produced += chars

    def value(self, size: int, what: str) -> None:
        if size > self.limits.value_chars:
            raise TemplateLimitError(
                f"{what} would build a value of {size:,} characters or items; the limit is "
                f"{self.limits.value_chars:,}"
            )


_BUDGET: contextvars.ContextVar[RenderBudget | None] = contextvars.ContextVar(
    "notification_template_budget", default=None
)


def _budget() -> RenderBudget:
    budget = _BUDGET.get()
    if budget is None:
        raise RuntimeError("notification templates are rendered with render_bounded()")
    return budget


def _size(value: Any, depth: int = 0) -> int:
    """Characters ``str(value)`` would take, roughly (at least that much), without building
    it; stops counting once over any sensible limit."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (int, float, bool)) or value is None:
        return 8
    if depth > 8:
        return 8
    if isinstance(value, dict):
        total = 2
        for k, v in value.items():
            total += _size(k, depth + 1) + _size(v, depth + 1) + 4
            if total > 1 << 30:
                break
        return total
    if isinstance(value, (list, tuple, set, frozenset)):
        total = 2
        for item in value:
            total += _size(item, depth + 1) + 2
            if total > 1 << 30:
                break
        return total
    return 64


# --------------------------------------------------------------------------- operators

_MAX_INT_BITS = 256


def _mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
            _budget().value(_size(seq) * max(0, times), "repeating a sequence")
    if isinstance(left, int) and isinstance(right, int):
        _check_bits(left.bit_length() + right.bit_length())
    return operator.mul(left, right)


def _check_bits(bits: int) -> None:
    if bits > _MAX_INT_BITS:
        raise TemplateLimitError(f"an integer of more than {_MAX_INT_BITS} bits")


def _add(left: Any, right: Any) -> Any:
    if isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
        _budget().value(_size(left) + _size(right), "joining two sequences")
    return operator.add(left, right)


def _pow(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
        if right * math.log2(abs(left)) > _MAX_INT_BITS:
            raise TemplateLimitError(f"a power of more than {_MAX_INT_BITS} bits")
    return operator.pow(left, right)


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(fmt: str) -> None:
    for match in _PERCENT_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*" or (part is not None and int(part) > 100):
                raise TemplateLimitError("a % format width or precision above 100")


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        _check_percent_format(left)
        _budget().value(_size(left) + _size(right), "formatting a string")
    return operator.mod(left, right)


# --------------------------------------------------------------------------- filters


def _pre(size_of_first: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A built-in filter wrapped with a step, a size check of its input (for filters that
    turn it into a string) and a size check of its result."""

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        def checked(*args: Any, **kwargs: Any) -> Any:
            budget = _budget()
            budget.step()
            if size_of_first:
                # The first argument may follow the context/environment one.
                for arg in args:
                    if not _is_jinja_internal(arg):
                        budget.value(_size(arg), f"the {name} filter")
                        break
            result = func(*args, **kwargs)
            if isinstance(result, (str, list, tuple, dict)):
                budget.value(_size(result), f"the {name} filter")
            return result

        name = getattr(func, "__name__", "filter").removeprefix("do_")
        checked.__name__ = func.__name__
        checked.__dict__.update(getattr(func, "__dict__", {}))  # keeps @pass_context etc.
        return checked

    return wrap


def _is_jinja_internal(value: Any) -> bool:
    return isinstance(value, (Environment, EvalContext, Context))


def _width(value: Any, what: str) -> None:
    if isinstance(value, int) and value > _budget().limits.value_chars:
        _budget().value(value, what)


def _center(value: Any, width: int = 80) -> str:
    _width(width, "center()")
    return FILTERS["center"](value, width)


def _indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    text = str(value)
    if isinstance(width, int) and width > 100:
        raise TemplateLimitError("an indent() width above 100")
    pad = width if isinstance(width, str) else " " * int(width)
    _budget().value(len(text) + len(pad) * (text.count("\n") + 1), "indent()")
    return FILTERS["indent"](text, pad, first, blank)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if linecount > _budget().limits.range_items:
        raise TemplateLimitError(f"batch() of more than {_budget().limits.range_items} items")
    return FILTERS["batch"](value, linecount, fill_with)


def _slice(value: Iterable[Any], slices: int, fill_with: Any = None) -> Iterator[list[Any]]:
    if slices > _budget().limits.range_items:
        raise TemplateLimitError(f"slice() into more than {_budget().limits.range_items} parts")
    return FILTERS["slice"](value, slices, fill_with)


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_percent_format(str(value))
    _budget().value(_size(value) + _size(args) + _size(kwargs), "format()")
    return FILTERS["format"](value, *args, **kwargs)


def _replace_size(text: str, old: str, new: str, count: int | None) -> int:
    hits = (len(text) + 1) if old == "" else text.count(old)
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(0, len(new) - len(old))


def _replace(eval_ctx: Any, value: str, old: str, new: str, count: int | None = None) -> str:
    _budget().value(_replace_size(str(value), str(old), str(new), count), "replace()")
    return FILTERS["replace"](eval_ctx, value, old, new, count)


_replace.jinja_pass_arg = FILTERS["replace"].jinja_pass_arg  # type: ignore[attr-defined]


def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _budget().value(_size(items) + len(str(d)) * len(items), "join()")
    return FILTERS["join"](eval_ctx, items, d, attribute)


_join.jinja_pass_arg = FILTERS["join"].jinja_pass_arg  # type: ignore[attr-defined]


def _wordwrap(
    environment: Any,
    value: str,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    text = str(value)
    lines = len(text) // max(1, int(width)) + text.count(" ") + text.count("-") + 1
    glue = len(wrapstring) if wrapstring is not None else 1
    _budget().value(len(text) + lines * glue, "wordwrap()")
    return FILTERS["wordwrap"](
        environment, text, width, break_long_words, wrapstring, break_on_hyphens
    )


_wordwrap.jinja_pass_arg = FILTERS["wordwrap"].jinja_pass_arg  # type: ignore[attr-defined]


def _tojson(eval_ctx: Any, value: Any, indent: int | None = None) -> Any:
    if indent is not None and indent > 8:
        raise TemplateLimitError("a tojson() indent above 8")
    return FILTERS["tojson"](eval_ctx, value, indent)


_tojson.jinja_pass_arg = FILTERS["tojson"].jinja_pass_arg  # type: ignore[attr-defined]


def pluralize(value: Any, suffix: str = "s") -> str:
    """``"s"`` unless ``value`` (a number, or a collection's length) is 1; ``"y,ies"`` gives
    the singular and plural endings."""
    if "," in suffix:
        singular, plural = suffix.split(",", 1)
    else:
        singular, plural = "", suffix
    try:
        count = value if isinstance(value, (int, float)) else len(value)
    except TypeError:
        count = 0
    return singular if count == 1 else plural


# Built-in filters that build a string from their input: input and result sizes checked.
# (``urlize`` and ``pprint`` are left out: nothing in a chat message needs them, and their
# output can grow far beyond their input.)
_STRINGIFYING = (
    "capitalize escape e forceescape lower upper title trim striptags string truncate "
    "wordcount urlencode xmlattr filesizeformat safe sum"
).split()
# The rest are safe as they are (their result is no larger than their input) but still
# count a step and have their result checked.
_PLAIN = (
    "abs attr count length default d dictsort first last float int items list map max min "
    "random reject rejectattr reverse round select selectattr sort unique groupby"
).split()


def _filters() -> dict[str, Callable[..., Any]]:
    table: dict[str, Callable[..., Any]] = {}
    for name in _STRINGIFYING:
        table[name] = _pre(True)(FILTERS[name])
    for name in _PLAIN:
        table[name] = _pre(False)(FILTERS[name])
    checked: dict[str, Callable[..., Any]] = {
        "center": _center,
        "indent": _indent,
        "batch": _batch,
        "slice": _slice,
        "format": _format,
        "replace": _replace,
        "join": _join,
        "wordwrap": _wordwrap,
        "tojson": _tojson,
        "pluralize": pluralize,
    }
    for name, func in checked.items():
        table[name] = _pre(False)(func)
    return table


# --------------------------------------------------------------------------- methods

_STR_METHODS = frozenset(
    "capitalize casefold center count endswith find index isalnum isalpha isdigit islower "
    "isspace istitle isupper join ljust lower lstrip partition removeprefix removesuffix "
    "replace rfind rindex rjust rpartition rsplit rstrip split splitlines startswith strip "
    "swapcase title upper zfill".split()
)
_SAFE_METHODS: dict[type, frozenset[str]] = {
    str: _STR_METHODS,
    dict: frozenset({"get", "items", "keys", "values"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
}
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_method(obj: Any, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Checks a string method call's result size before the call; returns the arguments
    to call it with (an iterable to join is read into a list first, to be measured)."""
    budget = _budget()
    if not isinstance(obj, str):
        return args
    if name in _WIDTH_METHODS and args and isinstance(args[0], int):
        budget.value(args[0], f"str.{name}()")
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 and isinstance(args[2], int) else None
        budget.value(_replace_size(obj, str(args[0]), str(args[1]), count), "str.replace()")
    elif name == "join" and args:
        items = list(args[0])
        budget.value(_size(items) + len(obj) * len(items), "str.join()")
        return (items, *args[1:])
    return args


# --------------------------------------------------------------------------- environment


def _range(*args: int) -> range:
    numbers = range(*args)
    limit = _budget().limits.range_items
    if len(numbers) > limit:
        raise TemplateLimitError(f"range() of more than {limit:,} numbers")
    return numbers


def _bounded_iter(iterable: Any) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _finalize(value: Any) -> Any:
    size = _size(value)
    _budget().produce(size)
    return value


def _checked_concat(parts: tuple[Any, ...]) -> str:
    _budget().value(sum(_size(p) for p in parts), "the ~ operator")
    return "".join(str(p) for p in parts)


class _Codegen(CodeGenerator):
    """Jinja's code generator, with every piece of output — template text included —
    passed through the environment's ``finalize`` (so it is counted), and ``~`` through a
    size-checked join."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        raise nodes.Impossible()

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


_FORBIDDEN: dict[type[nodes.Node], str] = {
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
    nodes.Extends: "{% extends %}",
}


def _refuse_everything(name: str) -> None:
    return None


class NotificationSandbox(ImmutableSandboxedEnvironment):
    """The sandbox every notification template (built-in or a channel's own) runs in."""

    code_generator_class = _Codegen
    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def __init__(self) -> None:
        super().__init__(
            loader=FunctionLoader(_refuse_everything),
            autoescape=False,
            undefined=ChainableUndefined,
            finalize=_finalize,
            keep_trailing_newline=True,
            auto_reload=False,
            cache_size=0,
        )
        self.filters = {**_filters(), "_bounded_iter": _bounded_iter}
        self.tests = dict(self.tests)
        self.globals = {"range": _range, "dict": dict, "namespace": self.globals["namespace"]}
        self.binop_table = {**self.binop_table, "*": _mul, "+": _add, "**": _pow, "%": _mod}
        self.checked_concat = _checked_concat

    # -- parsing ------------------------------------------------------------------------

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for kind, what in _FORBIDDEN.items():
            for node in tree.find_all(kind):
                raise TemplateSyntaxError(
                    f"{what} is not available in notification templates (a template stands alone)",
                    node.lineno,
                    name,
                    filename,
                )
        for loop in tree.find_all(nodes.For):
            if loop.recursive:
                raise TemplateSyntaxError(
                    "recursive loops are not available in notification templates",
                    loop.lineno,
                    name,
                    filename,
                )
            # A filter, not a name: a template cannot rebind it.
            loop.iter = nodes.Filter(
                loop.iter, "_bounded_iter", [], [], None, None, lineno=loop.lineno
            )
        return tree

    # -- the sandbox's hooks ------------------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(value, (types.BuiltinMethodType, types.MethodType)):
            for base, allowed in _SAFE_METHODS.items():
                if isinstance(obj, base):
                    return attr in allowed
        if isinstance(obj, (int, float, bytes)) and callable(value):
            return False
        return True

    def wrap_str_format(self, value: Any) -> None:
        # str.format and format_map stay out (see is_safe_attribute): a width in a format
        # spec would allocate before anything could check it.
        return None

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if owner is not None and isinstance(__obj, types.BuiltinMethodType):
            args = _check_method(owner, name, args)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, (str, list, tuple, dict)):
            budget.value(_size(result), f"{name or 'a call'}()")
        return result


def render_bounded(template: Any, context: dict[str, Any], limits: Limits) -> tuple[str, bool]:
    """``template`` rendered within ``limits``: (text, cut). At the output limit the text
    produced so far is returned with ``cut`` true; any other limit raises
    :class:`TemplateLimitError`."""
    budget = RenderBudget(limits)
    token = _BUDGET.set(budget)
    pieces: list[str] = []
    cut = False
    try:
        for piece in template.generate(context):
            pieces.append(piece)
    except OutputLimitReached:
        cut = True
    finally:
        _BUDGET.reset(token)
    return "".join(pieces), cut
