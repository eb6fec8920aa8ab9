#!/bin/sh
# catwalk entrypoint: install one MCP server into its own environment, then serve it over HTTP.
#
#   entrypoint.sh install   install the server (image build: bakes it into a layer) and exit 0
#   entrypoint.sh serve     serve an installed server; never touches the network
#   entrypoint.sh [run]     install if missing, then serve (default)
#   entrypoint.sh authserver  the stack's built-in OAuth authorization server (catwalk_runtime.authserver), not
#                    an MCP server: needs CATWALK_AS_ISSUER, CATWALK_AS_SIGNING_SEED, CATWALK_AS_PASSPHRASE and
#                    CATWALK_AS_RESOURCES (docs/authorization-server.md), and refuses to start without any of them
#
# Env contract (set by the catwalk stack; re-validated here because a container can be started by hand):
#   MCP_RUNTIME      npm | python | custom
#   MCP_PACKAGE      npm/python: `name`, `name==1.2.3`, `@scope/name@1.2.3`
#   MCP_COMMAND      custom: a command line, split on spaces; quotes and shell metacharacters are refused
#   MCP_ARGS         JSON array of extra args for the server
#   MCP_LAUNCH       JSON array: the server's argv inside its own environment (e.g. ["mcp-server-git"]);
#                    absent: the package's console script / npm bin named after it, else `python -m`
#   MCP_RESOLVED_AT  upload time of the pinned version: dependencies resolve as of then (+1 h margin); when
#                    nothing resolves, install retries as of release + 1 day, 7 days, 30 days, then fails
#   MCP_EXCLUDE_NEWER  overrides that cutoff verbatim (RFC 3339); `none` disables it
#   MCP_CUTOFF_FALLBACK  `none`: when nothing resolves even at the last widened cutoff, install without one
#                    (the newest dependencies: not reproducible); otherwise that install fails naming the dependency
#   MCP_AUTH_TOKEN   bearer token required on /mcp and /sse (never logged, not passed to the server)
#   PORT             default 8080, IPv4 and IPv6
#   MCP_HOST         where to listen: all interfaces (default, as Fly needs), `loopback`, or IP addresses
#   MCP_HOME         per-server environments root (default /opt/mcp)
#   MCP_GATEWAY_PYTHON  Python of the gateway's own venv, which imports h11 and catwalk_runtime (this
#                    directory's package; default /opt/gateway/bin/python, else python3 on PATH)
#   MCP_PYTHON       interpreter for Python servers' venvs (default python3)
#   UV, NPM          installer executables (default: found on PATH)
#   MCP_NEEDS_BROWSER  `chromium` when the server drives a browser (set by detection): install refuses to run
#                    without MCP_BROWSER rather than leave a server whose tools cannot launch one
#   MCP_VOLUME_PATH  where the server's Fly volume is mounted (set by the stack for a server with `volume`)
#   MCP_RUN_AS       UID:GID the server runs as (the image: 10001:10001). Fly mounts a volume owned by root
#                    and takes no owner for it, so a machine with a volume starts this script as root (its
#                    process `user` override): it hands the mount point to MCP_RUN_AS, then runs as that user
#   MCP_BROWSER      absolute path of the system Chromium (the baked image: Debian's /usr/bin/chromium). Installs
#                    then download no browser; the paths where Playwright, Puppeteer and pyppeteer look for one
#                    lead to it (through $MCP_HOME/.browser/chromium: headless without a display)
#
# This script checks that environment (in shell, so a baked start pays no interpreter for it), then hands
# over: `python -m catwalk_runtime.install` holds the install policy (cutoff widening, Node selection,
# browser wiring), `python -m catwalk_runtime.serve` the gateway. A Node.js installed for a server's
# engines.node (<env>/.node) and the system browser's variables are set here for the server to inherit.
set -eu

die() {
    printf 'Error: %s\n' "$*" >&2
    exit 1
}

# Echo a user value without letting it forge log lines: control characters become '?', length bounded.
show() {
    printf '%s' "$1" | tr -c '[:print:]' '?' | cut -c1-200
}

# Shell built-ins only on the serve path (no subprocess per check): each fork+exec costs a cold start time.
has_control() {
    case $1 in *[[:cntrl:]]*) return 0 ;; esac
    return 1
}

matches() { # value, extended regex
    printf '%s\n' "$1" | grep -Eq -- "$2"
}

# --- a volume: root only to hand its mount point to the image's user --------------------------------
if [ -n "${MCP_VOLUME_PATH-}" ]; then
    case $MCP_VOLUME_PATH in
    /?*) ;;
    *) die "MCP_VOLUME_PATH must be an absolute path, got '$(show "$MCP_VOLUME_PATH")'" ;;
    esac
    if [ -n "${MCP_RUN_AS-}" ] && [ "$(id -u)" = 0 ]; then
        case $MCP_RUN_AS in [0-9]*:[0-9]*) ;; *) die "MCP_RUN_AS must be UID:GID, got '$(show "$MCP_RUN_AS")'" ;; esac
        case ${MCP_RUN_AS#*:} in *[!0-9]*) die "MCP_RUN_AS must be UID:GID, got '$(show "$MCP_RUN_AS")'" ;; esac
        uid=${MCP_RUN_AS%%:*}
        [ -d "$MCP_VOLUME_PATH" ] || die "the volume is not mounted at MCP_VOLUME_PATH=$(show "$MCP_VOLUME_PATH")"
        chown "$MCP_RUN_AS" "$MCP_VOLUME_PATH" # the mount point only: what the server wrote is its own already
        run_home=$(getent passwd "$uid" | cut -d: -f6) || run_home=
        HOME=${run_home:-$HOME} exec setpriv --reuid="$uid" --regid="${MCP_RUN_AS#*:}" --clear-groups -- "$0" "$@"
    fi
    [ -w "$MCP_VOLUME_PATH" ] || die "the volume at MCP_VOLUME_PATH=$(show "$MCP_VOLUME_PATH") is not writable" \
        "by uid $(id -u): start the machine as root with MCP_RUN_AS set, or fix the mount's owner"
fi

action=${1:-run}
case $action in
install | serve | run | authserver) ;;
*) die "unknown action '$(show "$action")' (expected install, serve, run or authserver)" ;;
esac

# Sets gateway_python: the gateway's own venv (h11, the OAuth libraries, catwalk_runtime), never a server's.
find_gateway_python() {
    if [ -n "${MCP_GATEWAY_PYTHON-}" ]; then
        gateway_python=$MCP_GATEWAY_PYTHON
    elif [ -x /opt/gateway/bin/python ]; then
        gateway_python=/opt/gateway/bin/python
    else
        gateway_python=$(command -v python3) || die "the gateway's Python was not found: set MCP_GATEWAY_PYTHON"
    fi
    [ -x "$gateway_python" ] || die "MCP_GATEWAY_PYTHON=$(show "$gateway_python") is not executable"
}

# The bearer token leaves every environment before anything else runs (docs/token-delivery.md): it moves to a
# pipe on fd 3 (a here-document: dash writes it to a pipe, nothing on disk) and this script starts again
# without it, so no shell, tini or installer keeps it in its /proc/<pid>/environ. The gateway reads it from
# MCP_AUTH_FD. As PID 1 (a container without Fly's init), tini takes PID 1 to reap zombies.
tini=
[ "$$" != 1 ] || tini=$(command -v tini) || tini=
if [ -n "${MCP_AUTH_TOKEN+set}" ]; then
    token=$MCP_AUTH_TOKEN
    unset MCP_AUTH_TOKEN
    MCP_AUTH_FD=3
    export MCP_AUTH_FD
    if [ -n "$tini" ]; then
        exec "$tini" -- "$0" "$@" 3<<EOF
$token
EOF
    fi
    exec "$0" "$@" 3<<EOF
$token
EOF
elif [ -n "$tini" ]; then
    exec "$tini" -- "$0" "$@"
fi
# The authorization server serves no MCP server: its settings are checked here (fail closed, every missing one
# named; their values never shown) and in Python, which checks their form.
if [ "$action" = authserver ]; then
    missing=
    for var in CATWALK_AS_ISSUER CATWALK_AS_SIGNING_SEED CATWALK_AS_PASSPHRASE CATWALK_AS_RESOURCES; do
        eval "given=\${$var-}"
        [ -n "$given" ] || missing="$missing $var"
    done
    [ -z "$missing" ] || die "the authorization server needs${missing}: refusing to start" \
        "(the stack sets them; the seed and the passphrase as Fly secrets)"
    find_gateway_python
    exec "$gateway_python" -m catwalk_runtime.authserver
fi
# Fail closed, before any install: without a token the gateway serves only on the explicit opt-out.
if [ "$action" != install ] && [ -z "${MCP_AUTH_FD-}" ] && [ "${MCP_AUTH-}" != off ]; then
    die "the secret MCP_AUTH_TOKEN is not set, so /mcp and /sse would be open to anyone: refusing to start." \
        "Set it (the stack does, as a Fly secret), or set MCP_AUTH=off to serve without auth on purpose"
fi

runtime=${MCP_RUNTIME-}
case $runtime in
npm | python | custom) ;;
*)
    printf 'Error: Invalid MCP_RUNTIME=%s\n' "$(show "$runtime")" >&2
    printf 'MCP_RUNTIME must be one of: npm, python, custom\n' >&2
    exit 1
    ;;
esac

port=${PORT:-8080}
case $port in '' | *[!0-9]* | ??????*) false ;; esac || die "PORT must be a number 1-65535, got '$(show "$port")'"

# --- validation: the rules of catwalk_runtime/contract.py, which the deployer imports (tied to these lines by
# tests/entrypoint/test_contract_parity.py) ------------------------------------------------------------
package=${MCP_PACKAGE-}
command_line=${MCP_COMMAND-}
for var in MCP_PACKAGE MCP_COMMAND MCP_ARGS MCP_LAUNCH MCP_RESOLVED_AT MCP_EXCLUDE_NEWER \
    MCP_BROWSER MCP_NEEDS_BROWSER; do
    eval "value=\${$var-}"
    # shellcheck disable=SC2154 # assigned by the eval above
    if has_control "$value"; then
        die "$var contains a control character (newline, tab, NUL…): '$(show "$value")'"
    fi
done

case $runtime in
python)
    [ -n "$package" ] || die "MCP_PACKAGE is required when MCP_RUNTIME=python (e.g. mcp-server-git==2025.1.14)"
    matches "$package" '^[A-Za-z0-9]([A-Za-z0-9._-]{0,200}[A-Za-z0-9])?(==[A-Za-z0-9][A-Za-z0-9.+_-]{0,63})?$' ||
        die "MCP_PACKAGE='$(show "$package")' is not a Python package spec: expected name or name==version" \
            "(letters, digits, . _ -; no spaces, quotes, options or shell metacharacters)"
    ;;
npm)
    [ -n "$package" ] || die "MCP_PACKAGE is required when MCP_RUNTIME=npm (e.g. @modelcontextprotocol/server-memory@2026.8.31)"
    matches "$package" '^(@[A-Za-z0-9][A-Za-z0-9._-]{0,100}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,150}(@[A-Za-z0-9][A-Za-z0-9.+_-]{0,63})?$' ||
        die "MCP_PACKAGE='$(show "$package")' is not an npm package spec: expected name, name@version or" \
            "@scope/name@version (no spaces, quotes, options or shell metacharacters)"
    ;;
custom)
    [ -n "$command_line" ] || die "MCP_COMMAND is required when MCP_RUNTIME=custom"
    # Split on spaces only, never evaluated by a shell: refuse everything a shell would interpret.
    if matches "$command_line" "[][;|&\$\`<>(){}*?!~\\\\'\"#]"; then
        die "MCP_COMMAND contains shell metacharacters or quotes, which are not evaluated and cannot be" \
            "parsed safely: '$(show "$command_line")'; put extra arguments in MCP_ARGS (a JSON array)"
    fi
    case $command_line in -*) die "MCP_COMMAND starts with '-' and would be read as an option: '$(show "$command_line")'" ;; esac
    ;;
esac

home=${MCP_HOME:-/opt/mcp}
find_gateway_python

# Environment directory of this server: one per package spec, never the gateway's own venv.
key='' rest=$package # the spec with every '/' turned into '+'
while :; do
    case $rest in
    */*) key=$key${rest%%/*}+ rest=${rest#*/} ;;
    *) key=$key$rest && break ;;
    esac
done
env_dir=$home/$runtime/$key
marker=$env_dir/.catwalk-installed

# The system browser (built-ins only: this runs at every start too).
browser=${MCP_BROWSER-}
needs_browser=${MCP_NEEDS_BROWSER-}
case $needs_browser in
'' | chromium) ;;
*) die "MCP_NEEDS_BROWSER must be 'chromium' or empty, got '$(show "$needs_browser")'" ;;
esac
case $browser in
'') ;;
*[!A-Za-z0-9._/+-]* | *..* | [!/]*)
    die "MCP_BROWSER must be the absolute path of a Chromium executable (e.g. /usr/bin/chromium)," \
        "got '$(show "$browser")'"
    ;;
esac
browser_wrapper=$home/.browser/chromium # what every expected browser path leads to
browsers_dir=$env_dir/.browsers         # PLAYWRIGHT_BROWSERS_PATH of this server
node_dir=$env_dir/.node                 # a Node.js installed for this server's engines.node

if [ -n "${MCP_EXCLUDE_NEWER-}" ] && [ "$MCP_EXCLUDE_NEWER" != none ]; then
    matches "$MCP_EXCLUDE_NEWER" '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?(Z|[+-][0-9:]+)?$' ||
        die "MCP_EXCLUDE_NEWER='$(show "$MCP_EXCLUDE_NEWER")' is not an RFC 3339 date or time"
fi

# The marker is written last by the install, so a half-finished one never counts. Only the spec is compared: a
# baked image serves what was installed at build time even if the cutoff env differs at run time.
installed() {
    [ -f "$marker" ] && { IFS= read -r first_line <"$marker" || [ -n "$first_line" ]; } &&
        [ "$first_line" = "spec=$package" ]
}

require_browser() {
    [ -n "$needs_browser" ] && [ -z "$browser" ] || return 0
    die "$package drives a browser (Chromium) and none is configured: set MCP_BROWSER to a Chromium" \
        "executable (catwalk's baked image installs Debian's chromium and sets MCP_BROWSER=/usr/bin/chromium;" \
        "on Debian: apt-get install chromium)"
}

resolve() {
    "$gateway_python" -m catwalk_runtime.launch --runtime "$runtime" --env-dir "$env_dir" --package "$package" -- "$@"
}

if [ "$runtime" = custom ]; then
    set -f
    # shellcheck disable=SC2086 # split on spaces on purpose; globbing is off and metacharacters refused
    set -- $command_line
    set +f
    if [ "$action" = install ]; then
        resolve "$@" >/dev/null || exit 1
        printf 'Nothing to install for a custom command: %s\n' "$command_line" >&2
        exit 0
    fi
    exec "$gateway_python" -m catwalk_runtime.serve --runtime custom --port "$port" \
        --banner "Starting custom command: $command_line" -- "$@"
fi

case $action in
run)
    # Install first, from a non-dumpable process that holds the token meanwhile (no shell holds its pipe while
    # installers run), in a child with only the install's environment; it then starts `serve`.
    installed || exec "$gateway_python" -m catwalk_runtime.boot "$0"
    ;;
install)
    # The install policy (cutoff and its widening, Node selection, browser wiring): catwalk_runtime.install.
    exec "$gateway_python" -m catwalk_runtime.install --runtime "$runtime" --package "$package" --home "$home"
    ;;
serve)
    installed || die "$package is not installed under $home (run \`entrypoint.sh install\` first)"
    ;;
esac

# A Node.js installed for this server (engines.node) runs it and whatever it spawns; the gateway is Python.
[ ! -x "$node_dir/bin/node" ] || PATH=$node_dir/bin:$PATH
export PATH

# A server that drives a browser finds the system Chromium (Playwright and pyppeteer through links in
# $browsers_dir, Puppeteer and chrome-launcher through their variables) and never downloads one.
if [ -n "$needs_browser" ] || [ -d "$browsers_dir" ]; then
    require_browser
    [ -x "$browser" ] ||
        die "$package drives a browser and MCP_BROWSER=$browser is not executable (is Chromium installed?)"
    [ -x "$browser_wrapper" ] ||
        die "$package drives a browser and $browser_wrapper is missing: run \`entrypoint.sh install\`"
    export PLAYWRIGHT_BROWSERS_PATH="$browsers_dir" PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        PLAYWRIGHT_SKIP_VALIDATE_HOST_REQUIREMENTS=1 PUPPETEER_EXECUTABLE_PATH="$browser_wrapper" \
        PUPPETEER_SKIP_DOWNLOAD=1 CHROME_PATH="$browser_wrapper" PYPPETEER_HOME="$browsers_dir/pyppeteer" \
        PYPPETEER_CHROMIUM_REVISION=system
fi

# The gateway prints the banner once MCP_LAUNCH and MCP_ARGS have passed validation, then serves.
if [ "$runtime" = python ]; then banner="Starting Python module: $package"; else banner="Starting npm package: $package"; fi
exec "$gateway_python" -m catwalk_runtime.serve --runtime "$runtime" --env-dir "$env_dir" --package "$package" --port "$port" \
    --banner "$banner"
