#!/bin/sh
# BENCHMARK BASELINE ONLY - never use this to serve anything.
# The original design's entrypoint (its "Phase 3: Multi-Runtime Support"), kept verbatim except
# that the port comes from PORT (default 8080, as before) so several runs can share a machine. Its known
# defects are the point of the comparison: `pip install` into mcp-proxy's
# own environment, `|| true`, `python -m <package name>`, `npx -y` downloads at every start, `--host=::`
# (IPv6 only), `sh -c`, and no authentication.
set -e

if [ -z "$MCP_RUNTIME" ]; then
    echo "Error: MCP_RUNTIME is not set"
    exit 1
fi

case "$MCP_RUNTIME" in
npm)
    echo "Starting npm package: $MCP_PACKAGE"
    exec mcp-proxy --host=:: --port="${PORT:-8080}" --pass-environment -- npx -y "$MCP_PACKAGE"
    ;;
python)
    echo "Starting Python module: $MCP_PACKAGE"
    pip install --no-cache-dir "$MCP_PACKAGE" || true
    exec mcp-proxy --host=:: --port="${PORT:-8080}" --pass-environment -- python -m "$MCP_PACKAGE"
    ;;
custom)
    echo "Starting custom command: $MCP_COMMAND"
    exec mcp-proxy --host=:: --port="${PORT:-8080}" --pass-environment -- sh -c "$MCP_COMMAND"
    ;;
*)
    echo "Error: Invalid MCP_RUNTIME=$MCP_RUNTIME"
    exit 1
    ;;
esac
