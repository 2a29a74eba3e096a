from pyconvex import ArgumentValidationError, HttpRouter, Request, Response, api
from pyconvex.errors import InvalidQueryError

http = HttpRouter()


@http.route(path="/health", method="GET")
async def health(ctx, request: Request) -> Response:
    return Response.json({"status": "ok"})


@http.route(path="/tasks", method="GET")
async def list_tasks(ctx, request: Request) -> Response:
    done = request.query.get("done")
    args = {} if done is None else {"done": done == "true"}
    return Response.json(await ctx.run_query(api.tasks.list, args))


@http.route(path="/tasks", method="POST")
async def add_task(ctx, request: Request) -> Response:
    try:
        data = await request.json()
    except ValueError:
        return Response.json({"error": "Invalid JSON"}, status=400)
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return Response.json({"error": 'Send {"text": "..."}'}, status=400)
    task_id = await ctx.run_mutation(api.tasks.add, {"text": data["text"]})
    return Response.json({"id": task_id}, status=201)


@http.route(path="/tasks/{task_id}/complete", method="POST")
async def complete_task(ctx, request: Request) -> Response:
    try:
        await ctx.run_mutation(api.tasks.complete, {"id": request.path_params["task_id"]})
    except (ArgumentValidationError, InvalidQueryError):  # not a task id, or no such task
        return Response.json({"error": "No such task"}, status=404)
    return Response(status=204)
