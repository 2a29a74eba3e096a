import os

# The tests start a token issuer on a free port and say where in this variable.
providers = [
    {
        "domain": os.environ.get("PYCONVEX_TEST_ISSUER", "http://127.0.0.1:9"),
        "application_id": "pyconvex-test",
    }
]
