"""What a TagResources call did: plain records shared by the ECS adapter, which builds them,
and the follow-up flow in ``handler.core.follow_up``, which reads them."""

from __future__ import annotations

from dataclasses import dataclass

from handler.errors import ExporterError

__all__ = ["TaggingFailure", "TaggingReport"]


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
