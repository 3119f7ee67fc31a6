"""Synchronous FHIR R4 client for the clinic's EHR.

Used from Celery tasks and CLI commands, so it is blocking and small. It owns the retry rules
(only where repeating a request cannot duplicate a side effect), maps HTTP failures onto the
exception types in `errors`, and refuses to follow paging links to other servers, which would
leak our bearer token. Logs carry method, resource type, status, attempt and timing only.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from fhir_bridge.fhir.errors import (
    EhrError,
    EhrNotFound,
    EhrProtocolError,
    EhrUnavailable,
    as_operation_error,
    describe_failure,
    error_for_status,
)

FHIR_JSON = "application/fhir+json"
SearchParams = Mapping[str, str | Sequence[str]]
_WRITE_HEADERS = {"Content-Type": FHIR_JSON, "Prefer": "return=representation"}

logger = logging.getLogger(__name__)

_RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# A 500 may mean the write happened; repeat it only when repeating is harmless.
_RETRYABLE_WHEN_IDEMPOTENT = _RETRYABLE_STATUSES | {500}
# Failures that guarantee the request never reached the server (EhrUnavailable: token endpoint).
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, EhrUnavailable)
_IN_FLIGHT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
# FHIR R4 id and resource type grammars; anything else could smuggle path segments or queries.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
MAX_BATCH_ENTRIES = 50
"""Reads per ``batch`` request: EHRs cap a batch's size, and one slow entry holds the rest."""
MAX_PARALLEL_READS = 8
"""Reads in flight at once for an EHR without ``batch`` (a polite share of its capacity)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to repeat a transiently failing request."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential backoff with full jitter, so many workers do not retry in lockstep."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return (rng or random).uniform(0.0, ceiling)

    def delay_before_retry(self, attempt: int, retry_after: str | None) -> float:
        """Delay after failed `attempt`: the server's Retry-After if usable, else backoff."""
        requested = parse_retry_after(retry_after, datetime.now(UTC))
        if requested is not None:
            return min(self.max_delay, requested)
        return self.backoff(attempt)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait per a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


class EhrClient:
    """Read, search, create and update FHIR R4 resources on one EHR base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None,
        timeout: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        self._batch_supported: bool | None = None
        self._retry = retry
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self._base,
            auth=auth,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            headers={"Accept": FHIR_JSON, "User-Agent": "fhir-bridge"},
        )

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """Current version of a resource; EhrNotFound if absent or deleted."""
        return self._fetch(_instance_path(resource_type, resource_id), resource_type)

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """One specific historical version of a resource."""
        path = _instance_path(resource_type, resource_id, version_id)
        return self._fetch(path, resource_type)

    def search(self, resource_type: str, params: SearchParams) -> dict[str, Any]:
        """First page of a search, as the raw searchset Bundle."""
        response = self._request(
            "GET", resource_type, resource_type, params=_query_pairs(params), idempotent=True
        )
        return _json_body(response, "GET", resource_type)

    def search_all(self, resource_type: str, params: SearchParams) -> Iterator[dict[str, Any]]:
        """Every matching resource across all pages (`_include`d and outcome entries skipped)."""
        return self.all_matches(self.search(resource_type, params), resource_type)

    def all_matches(
        self, first_page: dict[str, Any], resource_type: str
    ) -> Iterator[dict[str, Any]]:
        """The matches of a searchset Bundle already fetched, then of its later pages."""
        bundle: dict[str, Any] | None = first_page
        followed: set[str] = set()
        while bundle is not None:
            for entry in bundle.get("entry") or []:
                mode = (entry.get("search") or {}).get("mode", "match")
                if mode == "match" and isinstance(entry.get("resource"), dict):
                    yield entry["resource"]
            next_url = _next_link(bundle)
            if next_url in followed:
                raise EhrProtocolError(f"EHR paging for {resource_type} loops; stopping")
            followed.add(next_url or "")
            bundle = self.next_page(bundle)

    def next_page(self, bundle: dict[str, Any]) -> dict[str, Any] | None:
        """The Bundle behind the `next` link, or None on the last page."""
        next_url = _next_link(bundle)
        if not next_url:
            return None
        url = self._same_server_url(next_url)
        response = self._request("GET", url, "Bundle", idempotent=True)
        return _json_body(response, "GET", "Bundle")

    def create(
        self, resource: dict[str, Any], *, if_none_exist: str | None = None
    ) -> dict[str, Any]:
        """Store a new resource (conditionally, if `if_none_exist` is a search query).

        Returns the stored resource, or the pre-existing match of a conditional create. Only
        conditional creates are retried after the request may have reached the server.
        """
        resource_type = _resource_type_of(resource)
        headers = {**_WRITE_HEADERS, **({"If-None-Exist": if_none_exist} if if_none_exist else {})}
        conditional = if_none_exist is not None
        response = self._request(
            "POST",
            resource_type,
            resource_type,
            body=resource,
            headers=headers,
            idempotent=conditional,
        )
        return self._stored_resource(response, resource_type)

    def update(self, resource: dict[str, Any], *, if_match: str | None = None) -> dict[str, Any]:
        """Replace a resource; with `if_match` (a version id) only if it is still that version."""
        resource_type = _resource_type_of(resource)
        resource_id = resource.get("id")
        if not isinstance(resource_id, str):
            raise ValueError(f"cannot update a {resource_type} without an id")
        path = _instance_path(resource_type, resource_id)
        headers = dict(_WRITE_HEADERS)
        if if_match:
            headers["If-Match"] = if_match if if_match.startswith("W/") else f'W/"{if_match}"'
        response = self._request(
            "PUT", path, resource_type, body=resource, headers=headers, idempotent=True
        )
        return self._stored_resource(response, resource_type)

    def operation(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        method: str = "GET",
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Invoke a FHIR operation such as `Subscription/12/$status` or `$export`.

        400/404/501 become EhrNotSupported (the EHR lacks the operation), except 410 Gone and a
        404 on an instance whose issues are all `not-found`/`deleted`: those are EhrNotFound.
        """
        if (
            "$" not in path
            or path.startswith("/")
            or any(bad in path for bad in ("://", "..", "?", "#"))
        ):
            raise ValueError("operation path must be relative and name an $operation")
        method = method.upper()
        target_type = path.split("/", 1)[0] if not path.startswith("$") else "system"
        try:
            response = self._request(
                method,
                path,
                target_type,
                params=tuple((params or {}).items()),
                body=body,
                headers={"Content-Type": FHIR_JSON} if body is not None else None,
                idempotent=method == "GET",
            )
        except EhrError as exc:
            raise as_operation_error(exc, on_instance=path.count("/") >= 2) from exc
        return _json_body(response, method, target_type)

    def capabilities(self) -> dict[str, Any]:
        """The server's CapabilityStatement (`GET metadata`)."""
        return self._fetch("metadata", "CapabilityStatement")

    def supports_batch(self) -> bool:
        """Whether the CapabilityStatement declares the system `batch` interaction.

        Asked once per client; an EHR that cannot answer `metadata` counts as without batch.
        """
        if self._batch_supported is None:
            try:
                statement = self.capabilities()
            except EhrError:
                return False
            self._batch_supported = declares_batch(statement)
        return self._batch_supported

    def batch(self, urls: Sequence[str]) -> list[BatchAnswer]:
        """Several reads and searches (`Type/id`, `Type?query`) in one `batch` round-trip.

        Only GETs, so the whole request is retried like a read. Each answer is mapped like
        the single request would have been: :meth:`BatchAnswer.resource` returns the
        resource or raises the same `EhrError` (EhrNotFound for a 404 or 410).
        """
        for url in urls:
            _batch_url(url)
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
        }
        base = self._base.copy_with(path=self._base.path.rstrip("/") or "/")
        response = self._request(
            "POST",
            base,
            "Bundle",
            body=bundle,
            headers={"Content-Type": FHIR_JSON},
            idempotent=True,
        )
        answer = _json_body(response, "POST", "Bundle")
        entries = answer.get("entry") if answer.get("type") == "batch-response" else None
        if not isinstance(entries, list) or len(entries) != len(urls):
            raise EhrProtocolError("EHR batch response does not answer each entry in order")
        return [BatchAnswer.of(url, entry) for url, entry in zip(urls, entries, strict=True)]

    def read_many(self, references: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """The current version of each ``Type/id`` reference, in as few round-trips as the
        EHR allows: one ``batch`` per ``MAX_BATCH_ENTRIES`` where it declares the
        interaction, otherwise the reads side by side (``MAX_PARALLEL_READS`` at a time).

        ``None`` marks a reference the EHR does not have (404, 410), and one no FHIR server
        can have (not a ``Type/id``: some EHRs put a name where the id belongs), which is
        not asked for. Any other failure raises the `EhrError` the single read would have;
        so does an answer about another resource than the one asked for (a misbehaving
        batch).
        """
        found: dict[str, dict[str, Any] | None] = {}
        wanted: list[str] = []
        for reference in dict.fromkeys(references):
            if is_readable_reference(reference):
                wanted.append(reference)
            else:
                found[reference] = None
        if len(wanted) > 1 and self.supports_batch():
            for start in range(0, len(wanted), MAX_BATCH_ENTRIES):
                part = wanted[start : start + MAX_BATCH_ENTRIES]
                for reference, answer in zip(part, self.batch(part), strict=True):
                    found[reference] = _answered(reference, answer)
            return found
        if len(wanted) <= 1:
            return found | {reference: self._read_or_none(reference) for reference in wanted}
        workers = min(MAX_PARALLEL_READS, len(wanted))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ehr-read") as pool:
            return found | dict(zip(wanted, pool.map(self._read_or_none, wanted), strict=True))

    def _read_or_none(self, reference: str) -> dict[str, Any] | None:
        resource_type, _, resource_id = reference.partition("/")
        try:
            return self.read(resource_type, resource_id)
        except EhrNotFound:
            return None

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()

    def __enter__(self) -> EhrClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _fetch(self, url: str | httpx.URL, resource_type: str) -> dict[str, Any]:
        response = self._request("GET", url, resource_type, idempotent=True)
        return _json_body(response, "GET", resource_type)

    def _stored_resource(self, response: httpx.Response, resource_type: str) -> dict[str, Any]:
        """The resource a write produced: from the body, else by reading the Location."""
        if response.content.strip():
            body = _json_body(response, response.request.method, resource_type)
            if body.get("resourceType") == resource_type:
                return body
        location = response.headers.get("Location") or response.headers.get("Content-Location")
        if not location:
            raise EhrProtocolError(
                describe_failure(response.request.method, resource_type, response.status_code, None)
                + ": no resource body and no Location",
                status=response.status_code,
            )
        return self._fetch(self._same_server_url(location), resource_type)

    def _same_server_url(self, link: str) -> httpx.URL:
        """Resolve a server-supplied link, refusing any that leaves our FHIR base."""
        url = self._base.join(link)
        same_origin = (url.scheme, url.netloc) == (self._base.scheme, self._base.netloc)
        under_base = url.path == self._base.path.rstrip("/") or url.path.startswith(self._base.path)
        if not (same_origin and under_base):
            raise EhrProtocolError("EHR returned a link outside its FHIR base URL; refusing it")
        return url

    def _request(
        self,
        method: str,
        url: str | httpx.URL,
        resource_type: str,
        *,
        idempotent: bool,
        params: tuple[tuple[str, str], ...] = (),
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        retryable_statuses = _RETRYABLE_WHEN_IDEMPOTENT if idempotent else frozenset()
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            # params=() would replace the query string of a `next` link; None keeps it.
            try:
                response = self._http.request(
                    method, url, params=params or None, content=content, headers=headers
                )
            except _NOT_SENT_ERRORS as exc:
                failure: Exception = exc
                retryable = True
            except _IN_FLIGHT_ERRORS as exc:
                failure, retryable = exc, idempotent
            else:
                status = response.status_code
                _log_attempt(method, resource_type, str(status), attempt, started)
                if status < 400:
                    return response
                if status not in retryable_statuses or attempt >= self._retry.max_attempts:
                    raise error_for_status(status, _outcome_of(response), method, resource_type)
                self._pause(attempt, response.headers.get("Retry-After"), method, resource_type)
                continue
            _log_attempt(method, resource_type, type(failure).__name__, attempt, started)
            if not retryable or attempt >= self._retry.max_attempts:
                status_seen = failure.status if isinstance(failure, EhrUnavailable) else None
                raise EhrUnavailable(
                    describe_failure(method, resource_type, status_seen, None)
                    + f" ({type(failure).__name__})",
                    status=status_seen,
                ) from failure
            self._pause(attempt, None, method, resource_type)

    def _pause(self, attempt: int, retry_after: str | None, method: str, rtype: str) -> None:
        delay = self._retry.delay_before_retry(attempt, retry_after)
        logger.info(
            "ehr_retry method=%s type=%s attempt=%d delay_s=%.2f", method, rtype, attempt, delay
        )
        self._sleep(delay)


@dataclass(frozen=True)
class BatchAnswer:
    """One entry of a `batch-response`: its HTTP status and resource (or outcome)."""

    url: str
    status: int
    body: dict[str, Any] | None

    @classmethod
    def of(cls, url: str, entry: Any) -> BatchAnswer:
        """Read one response entry; an unreadable status counts as a server error."""
        entry = entry if isinstance(entry, Mapping) else {}
        response = entry.get("response") if isinstance(entry.get("response"), Mapping) else {}
        status_text = str(response.get("status") or "").strip()
        code = status_text.split(" ", 1)[0]
        status = int(code) if code.isdigit() else 502
        body = entry.get("resource") if status < 400 else response.get("outcome")
        return cls(url=url, status=status, body=body if isinstance(body, dict) else None)

    def resource(self) -> dict[str, Any]:
        """The resource answered, or the `EhrError` the single request would have raised."""
        resource_type = _batch_url(self.url)
        if self.status >= 400:
            outcome = (
                self.body if (self.body or {}).get("resourceType") == "OperationOutcome" else None
            )
            raise error_for_status(self.status, outcome, "GET", resource_type)
        if self.body is None:
            raise EhrProtocolError(f"EHR batch answered GET {resource_type} without a body")
        return self.body


def declares_batch(statement: Mapping[str, Any]) -> bool:
    """Whether a CapabilityStatement declares the system ``batch`` interaction."""
    return any(
        isinstance(rest, Mapping)
        and any(
            isinstance(item, Mapping) and item.get("code") == "batch"
            for item in rest.get("interaction") or ()
        )
        for rest in statement.get("rest") or ()
    )


def is_readable_reference(reference: str) -> bool:
    """Whether ``reference`` is a relative ``Type/id`` a FHIR server could answer a read for."""
    resource_type, slash, resource_id = reference.partition("/")
    return bool(
        slash and _RESOURCE_TYPE.fullmatch(resource_type) and _FHIR_ID.fullmatch(resource_id)
    )


def _answered(reference: str, answer: BatchAnswer) -> dict[str, Any] | None:
    """A batch answer to a read: the resource, ``None`` when the EHR does not have it."""
    try:
        resource = answer.resource()
    except EhrNotFound:
        return None
    resource_type, _, resource_id = reference.partition("/")
    if resource.get("resourceType") != resource_type or resource.get("id") != resource_id:
        raise EhrProtocolError(f"EHR batch answered GET {resource_type} with another resource")
    return resource


def _batch_url(url: str) -> str:
    """The resource type of a relative `Type/id` or `Type?query` URL; ValueError otherwise."""
    path, _, _query = url.partition("?")
    parts = path.split("/")
    if len(parts) == 2:
        _instance_path(parts[0], parts[1])
    elif len(parts) != 1 or not _RESOURCE_TYPE.fullmatch(parts[0]):
        raise ValueError("a batch entry is a relative Type/id or Type?query")
    return parts[0]


def _outcome_of(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    return None


def _log_attempt(
    method: str, resource_type: str, result: str, attempt: int, started: float
) -> None:
    elapsed_ms = (time.monotonic() - started) * 1000
    logger.info(
        "ehr_request method=%s type=%s result=%s attempt=%d elapsed_ms=%.1f",
        *(method, resource_type, result, attempt, elapsed_ms),
    )


def _json_body(response: httpx.Response, method: str, resource_type: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise EhrProtocolError(
            describe_failure(method, resource_type, response.status_code, None)
            + ": body is not a JSON object",
            status=response.status_code,
        )
    return body


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    links = bundle.get("link") or []
    return next((link.get("url") for link in links if link.get("relation") == "next"), None)


def _resource_type_of(resource: Mapping[str, Any]) -> str:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not _RESOURCE_TYPE.fullmatch(resource_type):
        raise ValueError("resource has no valid resourceType")
    return resource_type


def _instance_path(resource_type: str, resource_id: str, version_id: str | None = None) -> str:
    """`Type/id[/_history/vid]`, refusing values that are not FHIR types or ids."""
    if not _RESOURCE_TYPE.fullmatch(resource_type):
        raise ValueError("not a FHIR resource type")
    for value in (resource_id, "1" if version_id is None else version_id):
        if not _FHIR_ID.fullmatch(value):
            raise ValueError(f"not a valid FHIR id for {resource_type}")
    path = f"{resource_type}/{resource_id}"
    return f"{path}/_history/{version_id}" if version_id is not None else path


def _query_pairs(params: SearchParams) -> tuple[tuple[str, str], ...]:
    """Flatten search params; a sequence value repeats the parameter (AND semantics)."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if isinstance(value, str):
            pairs.append((name, value))
        else:
            pairs.extend((name, item) for item in value)
    return tuple(pairs)
