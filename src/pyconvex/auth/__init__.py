"""Who is calling: bearer-token identities (``ctx.auth``) and API keys.

    identity = await ctx.auth.get_user_identity()     # UserIdentity or None
    if identity is None:
        return Response.json({"error": "Unauthorized"}, status=401)

Providers come from ``convex/auth_config.py`` (see :mod:`pyconvex.auth.providers`);
API keys from :mod:`pyconvex.api_keys`.
"""

from ..errors import AuthenticationError
from .identity import UserIdentity
from .jwt import Authenticator, TokenAuth
from .providers import Provider, ProviderConfigError, parse_providers

__all__ = [
    "AuthenticationError",
    "Authenticator",
    "Provider",
    "ProviderConfigError",
    "TokenAuth",
    "UserIdentity",
    "parse_providers",
]
