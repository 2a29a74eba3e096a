"""System tables: the deployment's own state, kept as ordinary documents.

Names start with ``_``. User code reads them through ``ctx.db.system`` and
never writes them; pyconvex writes them with ``system=True`` transactions.
Their indexes are declared here, once, and kept in line by ``Database.setup``
exactly like the indexes of the user's schema.
"""

from __future__ import annotations

from ..schema import TableDefinition, define_table
from ..validators import v

ENV_VARS = "_env_vars"

SYSTEM_TABLES: dict[str, TableDefinition] = {
    ENV_VARS: define_table({"name": v.string(), "value": v.string()}).index("by_name", ["name"]),
}
