"""catwalk's built-in OAuth 2.1 authorization server: one per stack, for its one operator.

Web connectors (claude.ai, ChatGPT) reach a server only through OAuth; this server mints the access tokens
the gateways of the stack accept (``catwalk_runtime.oauth``): EdDSA JWTs bound to one server's URL, after
the operator approves on a consent page with a passphrase. Run as ``python -m catwalk_runtime.authserver``
(``entrypoint.sh authserver`` in the image); its settings are ``CATWALK_AS_*`` (``contract``). Why authlib
and how it is put together: docs/authorization-server.md.
"""
