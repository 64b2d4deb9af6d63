"""``Client``: log activities in the background; create contacts and set consents directly."""

from __future__ import annotations

import atexit
import datetime as dt
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from waypost_sdk.delivery import Delivery, Pending, backoff, error_of, log, retry_after_of
from waypost_sdk.models import ConsentText, Dropped, Stats, WaypostError
from waypost_sdk.options import ClientOptions, encode, iso_datetime

USER_AGENT = "waypost-sdk-python/0.1"
DIRECT_RETRIES = 2
_D = ClientOptions()


class Client:
    """A client of Waypost's tracking API for one channel.

    ``log()`` only puts the activity in a bounded queue and returns; a background thread sends
    the queue in batches (by count, bytes and ``flush_interval``), retries network errors, 429
    and 5xx answers with exponential backoff and full jitter (``Retry-After`` is honoured), and
    gives up on other 4xx answers with a logged reason. Every activity gets an idempotency
    ``id``, so a retried request never stores an activity twice. The queue is flushed by
    :meth:`flush`, :meth:`close` and at interpreter exit.

    ``create_contact()``, ``set_consent()`` and the other direct calls wait for their answer
    and raise :class:`WaypostError` when they fail.

    ``url`` is where Waypost answers (``https://waypost.example.com``), ``key`` a tracking key
    (``wpt_...``) and ``channel`` the id of the key's channel. The other options are described
    on :class:`ClientOptions`. ``on_drop`` is called with a :class:`Dropped` for each activity
    that is not delivered, on the thread that dropped it; keep it short.
    """

    def __init__(
        self,
        url: str,
        key: str,
        channel: str | uuid.UUID,
        *,
        max_batch_size: int = _D.max_batch_size,
        max_request_bytes: int = _D.max_request_bytes,
        max_activity_bytes: int = _D.max_activity_bytes,
        flush_interval: float = _D.flush_interval,
        max_queue_size: int = _D.max_queue_size,
        max_retries: int = _D.max_retries,
        backoff_base: float = _D.backoff_base,
        backoff_max: float = _D.backoff_max,
        timeout: float = _D.timeout,
        gzip: bool = _D.gzip,
        gzip_threshold: int = _D.gzip_threshold,
        flush_at_exit: bool = _D.flush_at_exit,
        shutdown_timeout: float | None = _D.shutdown_timeout,
        on_drop: Callable[[Dropped], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        if not key:
            raise ValueError("key is required: a tracking key (wpt_...)")
        self.url = url.rstrip("/")
        self.channel = str(uuid.UUID(str(channel)))
        self.options = ClientOptions(
            max_batch_size=max_batch_size,
            max_request_bytes=max_request_bytes,
            max_activity_bytes=max_activity_bytes,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            timeout=timeout,
            gzip=gzip,
            gzip_threshold=gzip_threshold,
            flush_at_exit=flush_at_exit,
            shutdown_timeout=shutdown_timeout,
        )

        def http_client() -> httpx.Client:
            return httpx.Client(
                base_url=self.url + "/",
                headers={"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT},
                timeout=timeout,
                transport=transport,
                verify=verify if transport is None else True,
            )

        self._delivery = Delivery(http_client, self.channel, self.options, on_drop)
        if flush_at_exit:
            atexit.register(self._at_exit)

    def __repr__(self) -> str:
        # Never the key.
        return f"Client(url={self.url!r}, channel={self.channel!r})"

    # -- activities ----------------------------------------------------------------------------

    def log(
        self,
        contact: str | uuid.UUID,
        type: str,
        *,
        value: str | None = None,
        title: str | None = None,
        url: str | None = None,
        referrer: str | None = None,
        fields: Mapping[str, Any] | None = None,
        contact_fields: Mapping[str, str] | None = None,
        occurred_at: dt.datetime | str | None = None,
        id: str | None = None,
    ) -> str | None:
        """Queue one activity of ``type`` for ``contact``; never waits for the network.

        ``occurred_at`` defaults to now, so an activity sent late after retries keeps its time.
        ``id`` is the idempotency key (generated when not given; at most 100 characters).
        Returns the ``id``, or ``None`` when the activity was dropped (queue full, too large,
        client closed); drops are counted in :attr:`stats` and given to ``on_drop``.

        Raises ``ValueError`` or ``TypeError`` only for arguments that can never be sent: a
        contact that is not a UUID, a naive datetime, a field value JSON cannot hold.
        """
        contact_id = contact_uuid(contact)
        when = dt.datetime.now(dt.UTC) if occurred_at is None else occurred_at
        activity: dict[str, Any] = {"type": type}
        optional = {
            "value": value,
            "title": title,
            "url": url,
            "referrer": referrer,
            "fields": dict(fields) if fields is not None else None,
            "contactFields": dict(contact_fields) if contact_fields is not None else None,
        }
        activity.update((k, v) for k, v in optional.items() if v is not None)
        activity["id"] = id if id is not None else uuid.uuid4().hex
        activity["occurredAt"] = iso_datetime(when) if isinstance(when, dt.datetime) else when
        body = encode(activity)
        item = Pending(contact_id, body, type, activity["id"], time.monotonic())
        limit = self.options.max_activity_bytes
        if len(body) > limit:
            message = f"{len(body)} bytes once encoded; at most {limit} are sent"
            log.warning("Dropped activity %s (%s), too_large: %s", item.id, type, message)
            self._delivery.drop_now(item, "too_large", message)
            return None
        return item.id if self._delivery.enqueue(item) else None

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far now, and wait until each activity is delivered or
        dropped. ``False`` if ``timeout`` seconds passed first (delivery goes on)."""
        return self._delivery.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the background thread and close the connections.

        ``log()`` after this drops (reason ``closed``). With a ``timeout``, what is still unsent
        when it runs out is dropped (reason ``shutdown``) and ``False`` is returned.
        """
        atexit.unregister(self._at_exit)
        return self._delivery.close(timeout)

    @property
    def stats(self) -> Stats:
        """Delivery counters, as of now."""
        return self._delivery.stats()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _at_exit(self) -> None:
        if not self._delivery.closed:
            self._delivery.close(self.options.shutdown_timeout)

    # -- direct calls --------------------------------------------------------------------------

    def create_contact(self) -> str:
        """Create an anonymous contact and return its id.

        Like every direct call, it is retried twice on network errors, 429 and 5xx (after
        ``Retry-After`` when that is at most ``backoff_max``; a longer one fails at once). A
        retry after a lost answer may leave an unused anonymous contact behind, which is
        harmless.
        """
        answer = self._call("POST", "tracking/contacts")
        return str(uuid.UUID(str(answer["contact"])))

    def set_consent(self, contact: str | uuid.UUID, consent: str, agree: bool = True) -> bool:
        """Record that ``contact`` agreed to (or, with ``agree=False``, revoked) ``consent``;
        returns whether the contact now agrees."""
        path = f"tracking/contacts/{contact_uuid(contact)}/consents/{_segment(consent)}"
        return bool(self._call("POST", path, {"agree": agree})["isAgreed"])

    def consent_agreed(self, contact: str | uuid.UUID, consent: str) -> bool:
        """Whether ``contact``'s newest agreement to ``consent`` is an agreement."""
        path = f"tracking/contacts/{contact_uuid(contact)}/consents/{_segment(consent)}"
        return bool(self._call("GET", path)["isAgreed"])

    def consent_text(self, consent: str, language: str | None = None) -> ConsentText:
        """A consent's short and full text in ``language`` (else the channel's default)."""
        params = {"languageName": language} if language else None
        answer = self._call("GET", f"tracking/consents/{_segment(consent)}", params=params)
        return ConsentText(str(answer["shortText"]), str(answer["fullText"]))

    def _call(
        self,
        method: str,
        path: str,
        body: object = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        content = None if body is None else encode(body)
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            retry_after = None
            try:
                response = self._delivery.http.request(
                    method, path, content=content, headers=headers, params=params
                )
            except httpx.TransportError as exc:
                error = WaypostError(None, "network_error", f"{type(exc).__name__}: {exc}")
            else:
                if response.status_code == 200:
                    try:
                        answer = response.json()
                    except ValueError:
                        answer = None
                    if isinstance(answer, dict):
                        return answer
                    raise WaypostError(200, "invalid_json", "The answer is not a JSON object.")
                error = WaypostError(response.status_code, *error_of(response))
                if response.status_code != 429 and response.status_code < 500:
                    raise error
                retry_after = retry_after_of(response)
            attempt += 1
            # The caller is waiting: no longer than backoff_max, and never sooner than told.
            if attempt > DIRECT_RETRIES or (retry_after or 0) > self.options.backoff_max:
                raise error
            delay = backoff(self.options, attempt, retry_after)
            log.info("%s %s failed (%s); retrying in %.2f s", method, path, error, delay)
            time.sleep(delay)


def _segment(name: str) -> str:
    """A code name as one path segment."""
    return quote(name, safe="")


def contact_uuid(contact: str | uuid.UUID) -> str:
    """A contact id as the API takes it; ValueError, saying what to pass, for anything else."""
    try:
        return str(uuid.UUID(str(contact)))
    except ValueError:
        raise ValueError(
            f"contact must be a contact's UUID, as create_contact() returns; got {contact!r}."
        ) from None
