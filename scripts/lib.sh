# Helpers shared by scripts/install and scripts/test (sourced, not run): messages, and running
# a command as root when this user can (root itself, or sudo that will not hang on a password).

say() { printf '%s\n' "$*" >&2; }

die() {
    say "error: $*"
    exit 1
}

# Root, or sudo that can ask (a terminal) or need not ask (sudo -n): CI has no stdin.
can_be_root() {
    [ "$(id -u)" -eq 0 ] && return 0
    command -v sudo >/dev/null || return 1
    [ -t 0 ] || sudo -n true 2>/dev/null
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# /etc/os-release's ID: debian, ubuntu, ... (empty when unknown)
os_id() {
    if [ -r /etc/os-release ]; then (. /etc/os-release && printf '%s' "${ID:-}"); fi
}
