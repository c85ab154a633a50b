"""Each server instance's hot store, found by the URL its registry entry records
(`GAMESCHED_HOT_URL` of its workers): a session's state lives in the store of the
instance it runs on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence

from app.instances.base import Registry
from app.players.hotstore import HotStore, hot_store_for
from app.settings import store_name

URLS_TTL_S = 1.0  # the instances' hot-store URLs are read again at most this often
# An instance the last read did not name (not joined yet, or its entry lost with the
# registry) is looked for again at most this often: a lookup per session, in a round over
# thousands of them, was a registry round trip each.
URLS_MISS_S = 0.1
# Another instance's store is reached with timeouts: an instance cut off from this one (a
# partition, its host gone) must not hold a worker's thread or a game server's read for
# as long as the OS waits on a connection (minutes).  Each try gives up after this long,
# and a command is tried four times (`app.redisconn`).
OTHER_STORE_TIMEOUT_S = 1.0


class HotStores:
    """This process's own hot store (`own`, at `own_url`) and the other instances' stores,
    one client per store, made on first use."""

    def __init__(self, own: HotStore, own_url: str, registry: Registry, *,
                 own_store: str = "",
                 recorded: Callable[[str], str | None] | None = None) -> None:
        self.own, self._own_name, self._registry = own, store_name(own_url), registry
        # this store's name on the state log, and each instance's as SQL recorded it
        self._own_store, self._recorded = own_store or self._own_name, recorded
        self._lock = threading.Lock()
        self._stores: dict[str, HotStore] = {}
        self._urls: dict[str, str] = {}
        self._urls_at = float("-inf")

    @property
    def own_store(self) -> str:
        """This process's own store's name on the state log (`GAMESCHED_HOT_STORE`, else
        its URL's)."""
        return self._own_store

    def of_url(self, url: str) -> HotStore:
        """The hot store at `url` (this process's own for "" or the same store)."""
        name = store_name(url) if url else self._own_name
        if name == self._own_name:
            return self.own
        with self._lock:
            store = self._stores.get(name)
            if store is None:
                store = self._stores[name] = hot_store_for(url, OTHER_STORE_TIMEOUT_S)
            return store

    def of_instance(self, instance: str | None) -> HotStore:
        """The hot store of `instance` (this process's own for None, or for an instance
        that recorded none)."""
        if instance is None:
            return self.own
        return self.of_url(self.url_of(instance))

    def by_store(self, owners: Mapping[str, str | None]) -> dict[HotStore, list[str]]:
        """The sessions of `owners` (each with the instance it runs on, None for none) by
        the hot store of that instance."""
        grouped: dict[HotStore, list[str]] = {}
        for session_id, owner in owners.items():
            grouped.setdefault(self.of_instance(owner), []).append(session_id)
        return grouped

    def where_they_run(self, session_ids: Sequence[str]) -> dict[HotStore, list[str]]:
        """The sessions of `session_ids` by the hot store of the instance each runs on, as
        the registry says now (a session that moved is read where it went; one placed
        nowhere, in this process's own store)."""
        ids = list(dict.fromkeys(session_ids))
        return self.by_store(dict(zip(ids, self._registry.owners(ids), strict=True)))

    def url_of(self, instance: str) -> str:
        """The hot-store URL `instance` recorded ("" when none), read again from the
        registry when it is older than `URLS_TTL_S`, or `URLS_MISS_S` when it was not
        known."""
        now = time.monotonic()
        with self._lock:
            url = self._urls.get(instance)
            if now - self._urls_at < (URLS_MISS_S if url is None else URLS_TTL_S):
                return url or ""
        urls = self._registry.hot_urls()
        with self._lock:
            self._urls, self._urls_at = urls, now
        return urls.get(instance, "")

    def name_of(self, instance: str) -> str:
        """The name of `instance`'s hot store on SQL's state log: the one it recorded
        (`GAMESCHED_HOT_STORE` of its workers), else its URL's ("" when it recorded
        neither)."""
        recorded = self._registry.hot_names().get(instance)
        if recorded:
            return recorded
        url = self.url_of(instance)
        if url:
            return store_name(url)
        return (self._recorded(instance) if self._recorded is not None else None) or ""

    def gone(self, instance: str) -> str:
        """The name of `instance`'s hot store when it is another than this process's own
        and cannot be reached: the registry no longer records it (lost with the registry's
        Redis, and the instance never joined again), but SQL does; else ""."""
        if self._recorded is None or self.url_of(instance):
            return ""
        store = self._recorded(instance) or ""
        return store if store != self._own_store else ""

    def shared_with(self, instance: str) -> bool:
        """Whether `instance` keeps its sessions' state in this process's own store."""
        return self.of_instance(instance) is self.own
