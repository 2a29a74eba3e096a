"""Convex's sync protocol: live queries over a WebSocket, as Convex's own clients speak it.

``protocol`` is the wire format, ``queries`` the shared, invalidated query results of one
process, ``session`` one client's connection.
"""
