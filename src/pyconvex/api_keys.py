"""API keys for your users' programs: ``create``, ``validate``, ``revoke``, ``list_keys``.

    from pyconvex import api_keys

    key = await api_keys.create(ctx, owner="user_123", name="CI", scopes=["read"])
    record = await api_keys.validate(ctx, key)          # None if unknown or revoked

See :mod:`pyconvex.auth.api_keys` for how keys are kept.
"""

from .auth.api_keys import create, list_keys, revoke, validate

__all__ = ["create", "list_keys", "revoke", "validate"]
