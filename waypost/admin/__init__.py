"""The admin web UI under ``/admin``: server-rendered pages over the hub's services.

Kept free of imports so that the API's router can use :mod:`waypost.admin.auth` (session
cookies on ``/api``) without loading the templates; :func:`waypost.admin.routes.admin_routes`
builds the pages.
"""
