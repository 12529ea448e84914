"""The local platform: starts, checks and stops the real services on one machine.

Each service module (``kafka``, ``redis``, ``postgres``, ``ray``) offers ``start``, ``stop``
and ``status``; ``stack`` runs them in order for ``learnflow up`` / ``down`` / ``status``.
Data, logs and pid files live under ``settings.local.run_dir`` (``.run/``).
"""
