"""The hub: settings, the store and the services built on it, shared by API, CLI and tests."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from waypost.clientip import client_key, parse_trusted_proxies
from waypost.clock import Clock, SystemClock
from waypost.metrics import Metrics
from waypost.pipeline.catalog import Catalog
from waypost.pipeline.writer import Writer, WriterFront
from waypost.ratelimit import make_rate_limiter
from waypost.services.activities import ActivityService
from waypost.services.activity_types import ActivityTypeService
from waypost.services.browser_consents import BrowserConsentService
from waypost.services.channels import ChannelService
from waypost.services.collectors import CollectorService
from waypost.services.consents import ConsentService
from waypost.services.contact_export import ContactExportService
from waypost.services.contacts import ContactService
from waypost.services.erasure import ErasureService
from waypost.services.exports import ExportService
from waypost.services.group_updates import GroupUpdater
from waypost.services.groups import GroupService
from waypost.services.imports import ImportService
from waypost.services.keys import KeyService
from waypost.services.playbook_triggers import PlaybookTriggers
from waypost.services.playbooks import PlaybookService
from waypost.services.purge_schedule import PurgeScheduler
from waypost.services.replay import ReplayService
from waypost.services.reports import ReportService
from waypost.services.retention import RetentionService
from waypost.services.rollups import RollupService
from waypost.services.saved_reports import SavedReportService
from waypost.services.segment import SegmentService
from waypost.services.sessions import SessionService
from waypost.services.suppressions import SuppressionService
from waypost.services.users import UserService
from waypost.services.webhook_deliveries import WebhookDeliveryService
from waypost.services.webhook_dispatcher import WebhookDispatcher
from waypost.services.webhook_endpoints import WebhookEndpointService
from waypost.services.webhook_process import DispatcherProcess, can_run_apart
from waypost.services.writer_process import WriterProcess
from waypost.settings import Settings
from waypost.store import Store, make_engine
from waypost.store.shared_changes import make_change_feed


class Hub:
    """Every service of one Waypost instance, over one store, with its one writer.

    ``clock`` is the time every decision by time is taken from (the system's unless given).
    """

    def __init__(
        self, settings: Settings, store: Store | None = None, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.store = store if store is not None else Store(make_engine(settings))
        # On PostgreSQL, changes reach the caches of every node (docs/operations.md, "Several
        # nodes"); this hub sends its own from the start, and hears the others' once the
        # server starts listening (create_app's lifespan).
        self.shared_changes = make_change_feed(
            self.store.engine, settings.redis_url, self.store.changes
        )
        if self.shared_changes is not None:
            self.store.changes = self.shared_changes
        # What /metrics shows: the writer, the group updater, the webhook dispatcher, the
        # purges and the HTTP servers all count into it.
        self.metrics = Metrics()
        self.channels = ChannelService(self.store)
        self.keys = KeyService(self.store)
        self.types = ActivityTypeService(self.store, settings)
        self.consents = ConsentService(self.store)
        self.browser_consents = BrowserConsentService(self.store)
        self.contacts = ContactService(self.store)
        self.activities = ActivityService(self.store)
        self.exports = ExportService(self.store, self.activities)
        self.contact_exports = ContactExportService(self.store, self.activities)
        self.erasure = ErasureService(self.store, settings.purge_batch_size)
        self.suppressions = SuppressionService(self.store)
        self.catalog = Catalog(self.store, settings.catalog_ttl_seconds)
        # Whether work may run in a process of its own (the writer's, the webhook
        # dispatcher's): not for a database only this process can open, nor with a store or a
        # clock of the caller's (tests).
        apart = clock is None and store is None and can_run_apart(settings.database_url)
        # With WAYPOST_WRITER_PROCESS, the writer runs in a process of its own, on its own
        # core (services/writer_process.py).
        self.writer: WriterFront
        if settings.writer_process and apart:
            self.writer = WriterProcess(settings, self.store, self.metrics, self.wake_webhooks)
        else:
            self.writer = Writer(
                self.store,
                settings.commit_max_batch,
                settings.commit_max_delay_ms / 1000,
                self.metrics,
            )
        self.rate_limiter = make_rate_limiter(settings.redis_url, self.clock)
        self.trusted_proxies = parse_trusted_proxies(settings.trusted_proxies)
        self.segment = SegmentService(self.store, settings.max_draft_types)
        self.collectors = CollectorService(self.store)
        self.groups = GroupService(self.store, self.clock)
        self.group_updates = GroupUpdater(
            self.groups, tick=settings.group_refresh_seconds, clock=self.clock, metrics=self.metrics
        )
        self.store.on_commit = self.group_updates.committed
        # Every cache of definitions forgets its copy once a service commits a change to it.
        self.store.changes.subscribe(self.catalog.changed)
        self.store.changes.subscribe(self.groups.plans.changed)
        self.playbooks = PlaybookService(self.store, self.clock)
        self.playbook_triggers = PlaybookTriggers(
            self.store,
            self.clock,
            wake=self.wake_webhooks,
            ttl=settings.catalog_ttl_seconds,
        )
        # Playbooks run inside the transaction of what fires them; the writer and the group
        # computations ask the triggers' cache what is listened to before emitting anything.
        self.store.in_transaction.append(self.playbook_triggers.handle)
        self.store.changes.subscribe(self.playbook_triggers.changed)
        if isinstance(self.writer, Writer):
            # The writer's process asks triggers of its own (services/writer_process.py).
            self.writer.listened_types = self.playbook_triggers.activity_types
        self.groups.computer.listens = self.playbook_triggers.listens_to_group
        self.rollups = RollupService(self.store)
        self.reports = ReportService(self.store, self.clock)
        self.saved_reports = SavedReportService(self.store, self.clock)
        self.users = UserService(self.store)
        self.sessions = SessionService(self.store, dt.timedelta(hours=settings.session_hours))
        self.replay = ReplayService(
            self.store, self.catalog, self.writer, settings.max_activity_bytes
        )
        # Started with the server's background work, or by the first wake() (a message
        # written), so a hub that writes none never runs it.
        self.webhooks = WebhookDispatcher(self.store, settings, self.clock, metrics=self.metrics)
        # With WAYPOST_WEBHOOK_PROCESS, the same dispatcher runs in a process of its own, on
        # its own core; this process's one then never starts.
        self.webhook_process: DispatcherProcess | None = None
        if settings.webhook_process and apart:
            self.webhook_process = DispatcherProcess(settings)
        self.webhook_endpoints = WebhookEndpointService(self.store, settings, self.clock)
        self.webhook_deliveries = WebhookDeliveryService(
            self.store, self.clock, wake=self.wake_webhooks
        )
        self.imports = ImportService(
            self.store, self.catalog, self.writer, self.segment, settings.max_activity_bytes
        )
        self.retention = RetentionService(self.store, settings, self.clock, metrics=self.metrics)
        # Started by the server (create_app's lifespan), not by commands and scripts.
        self.purges = PurgeScheduler(self.retention, settings.purge_interval_seconds)

    def wake_webhooks(self) -> None:
        """Tell the webhook dispatcher that messages are due now (called after the commit
        that made them so). Without a dispatcher in this process, its poll finds them."""
        if self.webhook_process is not None:
            self.webhook_process.wake()
        else:
            self.webhooks.wake()

    def start_webhooks(self) -> None:
        """Start delivering webhooks, here or in the dispatcher's process."""
        if self.webhook_process is not None:
            self.webhook_process.start()
        else:
            self.webhooks.start()

    def stop_webhooks(self) -> None:
        """Stop delivering webhooks: calls in flight finish, the rest waits in the outbox."""
        if self.webhook_process is not None:
            self.webhook_process.stop()
        self.webhooks.stop()

    def client_key(self, scope: Mapping[str, object]) -> str:
        """The key of a request's client for every limit keyed by address: its address behind
        the trusted proxies, an IPv6 one as its /64 network (waypost/clientip.py)."""
        return client_key(scope, self.trusted_proxies)

    def close(self) -> None:
        """Finish queued writes and webhook calls in flight, then release the database."""
        self.purges.stop()
        self.writer.stop()
        self.group_updates.stop()
        # After the writer and the group updater, whose commits may still wake it.
        self.stop_webhooks()
        self.keys.usage.stop()
        if self.shared_changes is not None:
            self.shared_changes.stop()
        self.store.dispose()
