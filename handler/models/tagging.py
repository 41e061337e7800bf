"""Tags on images: what a tag key may be (the ECS adapter checks what it sends with it, the settings a
``RETENTION_GROUP_BY=tag:KEY``), and what a TagResources call did: plain records shared by the ECS adapter,
which builds them, and the follow-up flow in ``handler.core.follow_up``, which reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from handler.errors import ExporterError

__all__ = ["TAG_KEY_RULE", "TaggingFailure", "TaggingReport", "is_tag_key"]

# Tag keys: 1-128 letters, digits, spaces and _ . : / = + - @, never starting with volc: or sys: (any case;
# docs/facts.md §10).
_TAG_KEY = re.compile(r"\A[\w .:/=+\-@]{1,128}\Z")
_RESERVED_PREFIXES = ("volc:", "sys:")
TAG_KEY_RULE = "1-128 letters, digits, spaces or _ . : / = + - @, not starting with volc: or sys:"


def is_tag_key(key: str) -> bool:
    """Whether TagResources takes ``key`` as a tag key (``TAG_KEY_RULE``)."""
    return bool(_TAG_KEY.match(key)) and not key.lower().startswith(_RESERVED_PREFIXES)


@dataclass(frozen=True, slots=True)
class TaggingFailure:
    """One request's images, whose tags did not change, and why."""

    image_ids: tuple[str, ...]
    error: ExporterError


@dataclass(frozen=True, slots=True)
class TaggingReport:
    """What a tagging call did: the images whose requests went through, and each refused request."""

    done: tuple[str, ...] = ()
    failures: tuple[TaggingFailure, ...] = ()

    @property
    def failed_ids(self) -> tuple[str, ...]:
        """The images left as they were (their request was refused, failed after retries or not sent)."""
        return tuple(i for failure in self.failures for i in failure.image_ids)
