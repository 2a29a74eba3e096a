"""Live-query baseline: the fan-out of sync_feed.py as a hand-written ASGI WebSocket app."""

from sync_feed import handle, leave


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})

    async def reply(data: bytes) -> None:
        await send({"type": "websocket.send", "text": data.decode()})

    subscribed: list = []
    try:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            await handle(event.get("text") or event.get("bytes"), reply, subscribed)
    finally:
        leave(reply, subscribed)
