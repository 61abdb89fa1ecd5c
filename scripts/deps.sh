# Sourced by test scripts: how they get what they need on a fresh Debian 12
# machine without touching the system Python or leaving services behind.
#
#   as_root CMD...        runs CMD as root: directly when already root, else
#                         through sudo; without sudo, says what to run and fails
#   apt_install PKG...    installs Debian packages that are missing; runs
#                         `apt-get update` first when one has no candidate
#                         (a fresh machine has empty package lists), and
#                         forbids maintainer scripts to start services
#                         (policy-rc.d), so no daemon is left on a port
#   venv_python           prints the path of target/venv/bin/python, creating
#                         the virtualenv when missing (`python3 -m venv`;
#                         Debian's python3-venv is installed when needed);
#                         pip installs go there, never into the system Python
#                         (Debian refuses that: PEP 668)

DEPS_ROOT=${DEPS_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
VENV=${VENV:-$DEPS_ROOT/target/venv}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "need root for: $*" >&2
        echo "sudo is not installed: run that command as root (su -c '...'), then run this again" >&2
        return 1
    fi
}

# Whether apt knows a candidate version of package $1.
apt_has_candidate() {
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
    [ -n "$c" ] && [ "$c" != "(none)" ]
}

apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    for p in "${missing[@]}"; do
        if ! apt_has_candidate "$p"; then
            as_root apt-get update -qq
            break
        fi
    done
    # policy-rc.d exit 101 = "action forbidden": invoke-rc.d and
    # deb-systemd-invoke then start nothing while these packages install.
    local policy=/usr/sbin/policy-rc.d had_policy=0
    [ -e "$policy" ] && had_policy=1
    if [ "$had_policy" -eq 0 ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 0755 $policy"
    fi
    local rc=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null || rc=$?
    if [ "$had_policy" -eq 0 ]; then
        as_root rm -f "$policy"
    fi
    return "$rc"
}

venv_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        # Debian splits ensurepip (which venv needs) into python3-venv.
        if ! python3 -c 'import ensurepip' 2>/dev/null; then
            if command -v apt-get >/dev/null; then
                apt_install python3-venv >&2 || {
                    echo "python3 -m venv needs ensurepip: apt-get install python3-venv" >&2
                    return 1
                }
            else
                echo "python3 -m venv needs ensurepip (Debian: apt-get install python3-venv)" >&2
                return 1
            fi
        fi
        python3 -m venv "$VENV" >&2 || {
            rm -rf "$VENV"
            echo "python3 -m venv $VENV failed (Debian: apt-get install python3-venv)" >&2
            return 1
        }
    fi
    echo "$VENV/bin/python"
}

# venv_pip_install IMPORT SPEC...: installs SPECs into the virtualenv unless
# `import IMPORT` already works there.
venv_pip_install() {
    local py mod=$1
    shift
    py=$(venv_python) || return 1
    "$py" -c "import $mod" 2>/dev/null || "$py" -m pip install --quiet --disable-pip-version-check "$@" >&2
}

# memcached_binary: Debian's /usr/bin/memcached for the comparison scripts
# (scripts/bench-vs-memcached, scripts/memory-vs-memcached; no test needs
# it). The package's service is neither started (policy-rc.d above) nor
# left enabled for the next boot, so port 11211 stays free for `make run`.
memcached_binary() {
    command -v memcached >/dev/null && return 0
    apt_install memcached || return 1
    if command -v deb-systemd-helper >/dev/null; then
        as_root deb-systemd-helper disable memcached.service >/dev/null 2>&1 || true
    fi
    if [ -d /run/systemd/system ]; then
        as_root systemctl disable --now memcached.service >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null; then
        as_root update-rc.d memcached disable >/dev/null 2>&1 || true
    fi
}
