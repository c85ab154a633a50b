"""What a game server imports: `GameClient`, and the client-side parts of the player path
(the session table that prices work, the coalescer, priority inheritance)."""

from app.client.api import GameClient

__all__ = ["GameClient"]
