"""Live-query baseline: the fan-out of sync_feed.py as a Starlette WebSocket route."""

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from sync_feed import handle, leave


async def feed(websocket: WebSocket):
    await websocket.accept()

    async def reply(data: bytes) -> None:
        await websocket.send_text(data.decode())

    subscribed: list = []
    try:
        while True:
            await handle(await websocket.receive_text(), reply, subscribed)
    except WebSocketDisconnect:
        pass
    finally:
        leave(reply, subscribed)


app = Starlette(routes=[WebSocketRoute("/feed", feed)])
