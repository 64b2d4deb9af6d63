"""The name people read of an object they make (an activity type, a channel, a consent, a
group, a playbook, a saved report), and the description they write of it."""

from __future__ import annotations

from typing import Annotated

import msgspec

MAX_LENGTH = 200

# At least one character that is not white space: a name of spaces names nothing anyone can
# tell apart in a list. (``\S`` is one character class: nothing to backtrack.)
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LENGTH, pattern=r"\S")]

# What a marketer writes about such an object (and about a type's field): a paragraph.
MAX_DESCRIPTION = 2000
Description = Annotated[str, msgspec.Meta(max_length=MAX_DESCRIPTION)]
