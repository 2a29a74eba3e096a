"""Live-query baseline: the fan-out of sync_feed.py as a FastAPI WebSocket endpoint."""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from sync_feed import handle, leave

app = FastAPI()


@app.websocket("/feed")
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
