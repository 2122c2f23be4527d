"""Which clinic a caller is, and which records, counters and S3 keys it may see.

Each API key belongs to one clinic (API Gateway puts the key's id in the proxy
event's `requestContext.identity.apiKeyId`); the deployment maps key ids to
clinics in the API_KEY_CLINICS variable, a JSON object such as
`{"k1a2b3": "clinic-a", "k4d5e6": "clinic-b", "k7f8g9": "*"}`, where `*` marks
the admin key that sees every clinic. Left empty, the service is
single-tenant: every caller sees everything (the local cloud's default).

Pure functions, no AWS: the API handler, the S3 consumer and the result store
ask this module.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

from screening import resources

ADMIN = "*"
CLINIC_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")  # goes into S3 keys and resource names


class UnknownApiKey(Exception):
    """The request's API key is not mapped to a clinic."""


@dataclass(frozen=True)
class Caller:
    clinic: str | None  # None: the admin (or a single-tenant deployment), who sees every clinic

    @property
    def is_admin(self) -> bool:
        return self.clinic is None


ADMIN_CALLER = Caller(None)


@lru_cache(maxsize=8)
def parse_key_map(raw: str) -> dict[str, str]:
    """API_KEY_CLINICS -> {api key id: clinic or ADMIN}; a malformed map is a deployment error."""
    if not raw:
        return {}
    mapping = json.loads(raw)
    if not isinstance(mapping, dict):
        raise ValueError("API_KEY_CLINICS must be a JSON object of API key id -> clinic")
    for key_id, clinic in mapping.items():
        if not isinstance(clinic, str) or not (clinic == ADMIN or CLINIC_NAME.match(clinic)):
            raise ValueError(f"API_KEY_CLINICS maps {key_id!r} to an invalid clinic name {clinic!r}")
    return dict(mapping)


def clinics(raw: str) -> frozenset[str]:
    return frozenset(c for c in parse_key_map(raw).values() if c != ADMIN)


def caller_from_event(event: dict, raw_map: str) -> Caller:
    """The clinic of an API Gateway (REST) proxy event's API key."""
    mapping = parse_key_map(raw_map)
    if not mapping:
        return ADMIN_CALLER
    identity = (event.get("requestContext") or {}).get("identity") or {}
    clinic = mapping.get(identity.get("apiKeyId") or "")
    if clinic is None:
        raise UnknownApiKey("This API key belongs to no clinic.")
    return ADMIN_CALLER if clinic == ADMIN else Caller(clinic)


def can_see(caller: Caller, record: dict) -> bool:
    return caller.is_admin or record.get("clinic") == caller.clinic


def upload_prefix(caller: Caller) -> str:
    """Where a caller's presigned uploads go: the clinic is the key's first folder."""
    return resources.INCOMING_PREFIX if caller.is_admin else f"{resources.INCOMING_PREFIX}{caller.clinic}/"


def owns_key(caller: Caller, key: str) -> bool:
    return caller.is_admin or key.startswith(upload_prefix(caller))


def clinic_of_key(key: str, raw_map: str) -> str | None:
    """incoming/<clinic>/... -> clinic, for a clinic the deployment knows; else None (admin only)."""
    if not key.startswith(resources.INCOMING_PREFIX):
        return None
    first, _, rest = key[len(resources.INCOMING_PREFIX):].partition("/")
    return first if rest and first in clinics(raw_map) else None


def index_attributes(record: dict) -> dict:
    """The attributes the clinic-scoped indexes key on (absent for records of no clinic)."""
    clinic, label = record.get("clinic"), record.get("label")
    return {"clinic_label": f"{clinic}#{label}"} if clinic and label else {}


def counter_ids(record: dict) -> list[str]:
    """The counter items a record bumps: the deployment's, and its clinic's."""
    clinic = record.get("clinic")
    return [resources.COUNTERS_ID] + ([clinic_counter_id(clinic)] if clinic else [])


def clinic_counter_id(clinic: str | None) -> str:
    return resources.COUNTERS_ID if clinic is None else f"{resources.COUNTERS_ID}#{clinic}"


def listing_query(clinic: str | None, label: str | None) -> tuple[str, str, str]:
    """(index, partition attribute, value) listing a clinic's (or every clinic's) records newest first,
    without a scan."""
    if clinic is None:
        if label:
            return resources.BY_LABEL_INDEX, "label", label
        return resources.NEWEST_FIRST_INDEX, "record_type", resources.RECORD_TYPE
    if label:
        return resources.BY_CLINIC_LABEL_INDEX, "clinic_label", f"{clinic}#{label}"
    return resources.BY_CLINIC_INDEX, "clinic", clinic
