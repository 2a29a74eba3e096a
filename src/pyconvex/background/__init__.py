"""Background work: what runs without a request.

One layer, below the deployment that assembles it and imported by nothing beneath it:
:mod:`.worker` (the loop over the work queues), :mod:`.items` (the machinery that scheduled
functions, webhook handlers and work pool items share: batches, claims, retries),
:mod:`.scheduled`, :mod:`.webhooks`, :mod:`.pools`, :mod:`.crons` and :mod:`.cronspec`.
Each is handed what it needs (the worker, and through it a ``Host``: the database and the
executor); none imports the deployment.
"""
