"""catwalk's runtime: what runs inside the image to install one MCP server and serve it over HTTP.

Standard library plus h11, so it runs from the image's small gateway venv. One module per job:

* ``launch``: the server's argv (``MCP_LAUNCH`` or the package's own script) inside its environment;
* ``contract``: what the deployer (``components``) and the image agree on (spec grammar, limits, layout);
* ``install``, ``cutoff``, ``node``, ``browser``: the install policy (dependencies as of the release, widened
  when nothing resolves; a Node.js for engines.node; the system browser for servers that drive one);
* ``supervisor``: the server process (pipes, exit, signals, stop sequence);
* ``relay``: many client sessions multiplexed onto the one server (pure);
* ``auth`` and ``mcp_http``: the HTTP side (bearer check, routes, h11 connections, limits);
* ``gateway`` and ``serve``: the running gateway and the ``python -m catwalk_runtime.serve`` command.
"""
