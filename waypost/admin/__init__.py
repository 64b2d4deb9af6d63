"""The admin web UI under ``/admin``: server-rendered pages over the hub's services;
:func:`waypost.admin.routes.admin_routes` builds the pages. Sessions, roles and CSRF tokens are
in :mod:`waypost.access`, which the admin API shares."""
