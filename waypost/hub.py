"""The hub: settings, the store and the services built on it, shared by API, CLI and tests."""

from __future__ import annotations

from waypost.services.activity_types import ActivityTypeService
from waypost.services.channels import ChannelService
from waypost.services.keys import KeyService
from waypost.settings import Settings
from waypost.store import Store, make_engine


class Hub:
    """Every service of one Waypost instance, over one store."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store if store is not None else Store(make_engine(settings))
        self.channels = ChannelService(self.store)
        self.keys = KeyService(self.store)
        self.types = ActivityTypeService(self.store, settings)

    def close(self) -> None:
        self.store.dispose()
