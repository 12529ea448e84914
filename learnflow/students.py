"""The one rule for a student id: the event model, tokens, the CLI and the dev login share it.

ASCII letters and digits first, then those and ``_ . : @ -``; 1 to 64 characters. Look-alike
letters from other scripts (a Cyrillic ``а`` for a Latin ``a``), spaces and braces are refused:
an id names a student in Redis keys (inside ``{…}`` hash tags), Kafka keys and URLs, and two ids
that print the same must not be two students.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

import msgspec
from pydantic import StringConstraints

RULE: Final = (
    "1 to 64 characters: ASCII letters, digits and _ . : @ -, starting with a letter or digit"
)
_FIRST, _REST = "A-Za-z0-9", "A-Za-z0-9_.:@-"
PATTERN: Final = rf"^[{_FIRST}][{_REST}]{{0,63}}$"
"""The rule as a regular expression (``$`` is the end of the text in pydantic's engine)."""
WHOLE_ID: Final = rf"[{_FIRST}][{_REST}]{{0,63}}"
"""The rule for ``re.fullmatch`` (with ``re.ASCII``)."""
_MATCHER: Final = re.compile(WHOLE_ID, re.ASCII)

StudentId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=PATTERN),
    msgspec.Meta(min_length=1, max_length=64),
]
"""A student id in a wire format: a pydantic model checks it whole; a msgspec struct checks
its length, and its ``__post_init__`` the rest with :data:`WHOLE_ID` (the event does, with
its other ids in the same match)."""


def is_valid(value: str) -> bool:
    """Whether ``value`` is a student id (the whole string: no trailing newline slips by)."""
    return _MATCHER.fullmatch(value) is not None
