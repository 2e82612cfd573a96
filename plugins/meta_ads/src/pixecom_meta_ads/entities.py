"""Turning one Graph campaign, ad set or ad object into core's :class:`AdEntity`.

Meta's ``effective_status`` says whether an object delivers, its parents' statuses
included (an ad set of a paused campaign reads ``CAMPAIGN_PAUSED``). Core keeps four
statuses; this table maps Meta's values to them (Marketing API reference, "Ad Campaign" /
"Ad Set" / "Ad" ``effective_status``, and "Manage Your Ad Object's Status":
developers.facebook.com/docs/marketing-api/best-practices/storing_adobjects):

==========================================================  ============
Meta ``effective_status``                                   core status
==========================================================  ============
``ACTIVE``, ``IN_PROCESS``, ``WITH_ISSUES``,                ``active``
``PENDING_REVIEW``, ``DISAPPROVED``, ``PREAPPROVED``,
``PENDING_BILLING_INFO`` (and any value Meta adds later)
``PAUSED``, ``CAMPAIGN_PAUSED``, ``ADSET_PAUSED``           ``paused``
``ARCHIVED``                                                ``archived``
``DELETED``                                                 ``deleted``
==========================================================  ============

Review, billing and "with issues" states are the seller's object still meant to run (the
dashboard shows it as active; Meta's own UI flags the issue); only the seller pausing it,
itself or through a parent, makes it paused.
"""

from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from pixecom_core.providers import AdEntity, AdEntityStatus, EntityLevel, ProviderError
from pixecom_meta_ads.client import PROVIDER

EFFECTIVE_STATUSES: Final = {
    "PAUSED": AdEntityStatus.PAUSED,
    "CAMPAIGN_PAUSED": AdEntityStatus.PAUSED,
    "ADSET_PAUSED": AdEntityStatus.PAUSED,
    "ARCHIVED": AdEntityStatus.ARCHIVED,
    "DELETED": AdEntityStatus.DELETED,
}
#: The field naming an object's parent, per level.
PARENT_FIELDS: Final = {EntityLevel.ADSET: "campaign_id", EntityLevel.AD: "adset_id"}


class MalformedEntity(ProviderError):
    """A campaign, ad set or ad object without an id (or without its parent's id)."""


def entity_status(effective_status: object) -> AdEntityStatus:
    """Core's status for Meta's ``effective_status`` (see the module's table)."""
    return EFFECTIVE_STATUSES.get(str(effective_status or "").upper(), AdEntityStatus.ACTIVE)


def ad_entity(item: Mapping[str, Any], *, level: EntityLevel) -> AdEntity:
    """One Graph object of the ``level`` edge as an :class:`AdEntity`; an object without a
    name (never seen; Meta requires one) is named by its id.

    :raises MalformedEntity: no id, or no parent id for an ad set or ad.
    """
    entity_id = str(item.get("id") or "").strip()
    parent_field = PARENT_FIELDS.get(level)
    parent_id = str(item.get(parent_field) or "").strip() if parent_field else None
    if not entity_id or parent_id == "":
        raise MalformedEntity(
            f"Meta listed a {level.value} without "
            + ("an id" if not entity_id else f"its {parent_field}")
            + f": {dict(item)!r}"[:300],
            provider=PROVIDER,
        )
    name = str(item.get("name") or "").strip() or entity_id
    try:
        return AdEntity(
            entity_type=level,
            entity_id=entity_id,
            name=name,
            status=entity_status(item.get("effective_status")),
            parent_id=parent_id,
        )
    except ValidationError as exc:
        raise MalformedEntity(
            f"Meta listed an unusable {level.value} {entity_id}: {exc}", provider=PROVIDER
        ) from exc
