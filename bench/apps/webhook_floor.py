"""The floor: read the body and answer 200, nothing else (what uvicorn itself costs per webhook)."""


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"17"), (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"received":true}'})
