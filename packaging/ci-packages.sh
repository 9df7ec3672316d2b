#!/usr/bin/env bash
# Build condor_restd's RPM and DEB on Debian and check what they hold.
#
#   bash packaging/ci-packages.sh
#
# 1. installs the Debian packages the builds need (apt-get; only those missing),
# 2. runs `make clean packages`,
# 3. checks that the RPM and the DEB each contain the daemon, the config snippet
#    (as a config file), the man page, the docs, the licence and the Python package,
# 4. runs lintian on the DEB and fails on any error (E:),
# 5. installs the DEB with apt-get (everything it depends on comes from Debian;
#    HTCondor's bindings are only recommended), checks the installed files,
# 6. purges the DEB again, so the machine is left as it was found.
#
# Needs root (or sudo) for apt-get. Runs unattended and can be run any number of times.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

PKG=condor-restd
DAEMON=/usr/libexec/condor/condor_restd
SNIPPET=/etc/condor/config.d/50-condor-restd.conf
MANPAGE=/usr/share/man/man8/condor_restd.8.gz
# The build tools, plus the DEB's Debian dependencies (so that installing it needs no download).
NEEDED=(make build-essential fakeroot rpm debhelper dh-python python3-all python3-all-dev python3-setuptools lintian
        python3-cherrypy3 python3-cryptography python3-jwt python3-prometheus-client python3-requests
        python3-yaml)
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

started=$SECONDS
problems=0
step() { printf '\n== %s\n' "$*"; }
ok()   { printf '   ok: %s\n' "$*"; }
bad()  { printf '   FAIL: %s\n' "$*"; problems=$((problems + 1)); }
finish_step() {
    if [ "$problems" -gt 0 ]; then
        printf '\nci-packages: FAIL (%d problem(s), %ds)\n' "$problems" $((SECONDS - started))
        exit 1
    fi
}

if [ "$(id -u)" -eq 0 ]; then
    as_root() { "$@"; }
elif command -v sudo >/dev/null; then
    as_root() { sudo -n env DEBIAN_FRONTEND=noninteractive "$@"; }
else
    echo "ci-packages: needs root (or sudo) for apt-get" >&2
    exit 1
fi

installed() {
    local status
    status=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
    [ "$status" = installed ]
}

# Purge the DEB, if this or an earlier run left it (installed or just its conffiles).
purge_deb() {
    if dpkg-query -W "$PKG" >/dev/null 2>&1; then
        as_root apt-get purge "${APT_OPTS[@]}" "$PKG" >/dev/null
    fi
}
trap purge_deb EXIT

# $1 = listing (one path a line), $2 = label; the remaining arguments are paths or
# extended regexps (prefixed with ~) that must occur in the listing.
expect_in() {
    local listing=$1 label=$2 want
    shift 2
    for want in "$@"; do
        if [ "${want#\~}" != "$want" ]; then
            if grep -Eq -- "${want#\~}" <<<"$listing"; then ok "$label: ${want#\~}"; else bad "$label lacks ${want#\~}"; fi
        elif grep -Fqx -- "$want" <<<"$listing"; then
            ok "$label: $want"
        else
            bad "$label lacks $want"
        fi
    done
}

# Where /usr/bin/python3 can import HTCondor's bindings from: "" when they are installed
# system-wide, else a directory holding links to just the bindings from the project's
# .venv (which .ci/run creates), if that was made for the same Python version; "none"
# when there are none to be had.
find_bindings() {
    if (cd / && env -u PYTHONPATH /usr/bin/python3 -c 'import htcondor2, classad2') 2>/dev/null; then
        echo ""
        return
    fi
    local pyver site dir name
    pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    site=$PWD/.venv/lib/python$pyver/site-packages
    if [ -d "$site/htcondor2" ] && [ -d "$site/classad2" ]; then
        dir=$(mktemp -d /tmp/ci-packages-bindings.XXXXXX)
        for name in htcondor2 classad2 htcondor.libs; do
            if [ -e "$site/$name" ]; then ln -s "$site/$name" "$dir/$name"; fi
        done
        echo "$dir"
    else
        echo none
    fi
}

# Run the installed launcher: --version, then the demo pool on a free port, one request,
# and SIGTERM, which must end it with status 0. The Python packages come from Debian;
# only HTCondor's bindings may come from elsewhere (see find_bindings).
smoke_test_daemon() {
    local bindings out pid port status daemon_log watchdog waited=0
    bindings=$(find_bindings)
    if [ "$bindings" = none ]; then
        echo "   note: no HTCondor bindings for /usr/bin/python3 here (neither installed nor in .venv):" \
             "the daemon is not started"
        return
    fi
    [ -z "$bindings" ] || echo "   (HTCondor's bindings for this check: linked from .venv)"
    if out=$(cd / && env -u PYTHONPATH PYTHONPATH="$bindings" /usr/bin/condor_restd --version 2>&1) &&
            [[ $out == *"$version"* && $out == *"; compiled helper)"* ]]; then
        ok "/usr/bin/condor_restd --version: $out"
    else
        bad "/usr/bin/condor_restd --version: $out"
    fi
    daemon_log=$(mktemp /tmp/ci-packages-daemon.XXXXXX)
    (cd / && exec env -u PYTHONPATH PYTHONPATH="$bindings" CONDOR_CONFIG=ONLY_ENV \
        "$DAEMON" --demo --port 0 >"$daemon_log" 2>&1) &
    pid=$!
    port=""
    while [ -z "$port" ] && [ "$waited" -lt 30 ] && kill -0 "$pid" 2>/dev/null; do
        sleep 0.5
        waited=$((waited + 1))
        port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\)/v1.*|\1|p' "$daemon_log" | head -n 1)
    done
    if [ -z "$port" ]; then
        bad "$DAEMON --demo did not start listening; its output:"
        sed 's/^/      /' "$daemon_log"
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    else
        if out=$(/usr/bin/python3 -c 'import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=20)
print(r.status, len(r.read()), "bytes")' "http://127.0.0.1:$port/v1/status" 2>&1); then
            ok "$DAEMON --demo answered GET /v1/status: $out"
        else
            bad "GET /v1/status from $DAEMON --demo failed: $out"
        fi
        kill -TERM "$pid"
        (sleep 30 && kill -KILL "$pid" 2>/dev/null) &
        watchdog=$!
        status=0
        wait "$pid" || status=$?
        kill "$watchdog" 2>/dev/null || true
        if [ "$status" -eq 0 ]; then ok "SIGTERM: exit status 0"; else bad "SIGTERM: exit status $status"; fi
    fi
    rm -f "$daemon_log"
    if [ -n "$bindings" ]; then rm -rf "$bindings"; fi
}

if [ ! -f condor_config.d/50-condor-restd.conf ]; then
    echo "ci-packages: condor_config.d/50-condor-restd.conf is missing; both packages install it" >&2
    exit 1
fi
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' condor_restd/__init__.py)
[ -n "$version" ] || { echo "ci-packages: cannot read __version__ from condor_restd/__init__.py" >&2; exit 1; }

step "build tools"
missing=()
for p in "${NEEDED[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "   installing: ${missing[*]}"
    as_root apt-get update -q >/dev/null
    as_root apt-get install "${APT_OPTS[@]}" --no-install-recommends "${missing[@]}" >/dev/null
fi
ok "installed: ${NEEDED[*]}"

step "make clean packages (version $version)"
log=$(mktemp /tmp/ci-packages-build.XXXXXX)
if ! make clean packages >"$log" 2>&1; then
    tail -n 60 "$log"
    printf '\nci-packages: FAIL: the package build failed (whole log: %s)\n' "$log"
    exit 1
fi
rm -f "$log"
rpm_file=$(ls dist/$PKG-"$version"-*.rpm | grep -v "\.src\.rpm$" | grep -v debug)
deb_file=$(ls dist/${PKG}_"$version"-*.deb | grep -v dbgsym)
ok "built $rpm_file"
ok "built $deb_file"

step "RPM contents"
rpm_list=$(rpm -qlp "$rpm_file" 2>/dev/null)
expect_in "$rpm_list" RPM "$DAEMON" /usr/bin/condor_restd "$SNIPPET" "$MANPAGE" \
    /usr/share/doc/$PKG/install.md /usr/share/licenses/$PKG/LICENSE \
    '~^/usr/lib(64)?/python3[.0-9]*/site-packages/condor_restd/__init__\.py$' \
    '~^/usr/lib(64)?/python3[.0-9]*/site-packages/condor_restd/_speedups\..*\.so$' \
    '~^/usr/lib(64)?/python3[.0-9]*/site-packages/condor_restd/demo_data/'
flags=$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm_file" 2>/dev/null | awk -v f="$SNIPPET" '$1 == f {print $2}')
if [[ $flags == *c* && $flags == *n* ]]; then ok "RPM: $SNIPPET is %config(noreplace)"; else bad "RPM: $SNIPPET is not %config(noreplace) (flags '$flags')"; fi
expect_in "$(rpm -qp --requires "$rpm_file" 2>/dev/null)" "RPM Requires" python3 python3-cherrypy python3-prometheus_client \
    python3-pyyaml python3-condor python3-jwt python3-requests python3-cryptography

step "DEB contents"
deb_list=$(dpkg-deb -c "$deb_file" | awk '{print substr($6, 2)}')
expect_in "$deb_list" DEB "$DAEMON" /usr/bin/condor_restd "$SNIPPET" "$MANPAGE" \
    /usr/share/doc/$PKG/copyright '~^/usr/share/doc/'$PKG'/install\.md(\.gz)?$' \
    /usr/lib/python3/dist-packages/condor_restd/__init__.py \
    '~^/usr/lib/python3/dist-packages/condor_restd/_speedups\..*\.so$' \
    '~^/usr/lib/python3/dist-packages/condor_restd/demo_data/'
expect_in "$(dpkg-deb -I "$deb_file" conffiles 2>/dev/null)" "DEB conffiles" "$SNIPPET"
depends=$(dpkg-deb -f "$deb_file" Depends)
expect_in "$(tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/ .*//')" "DEB Depends" python3-cherrypy3 python3-prometheus-client python3-yaml \
    python3-jwt python3-requests python3-cryptography
if grep -q htcondor <<<"$depends"; then bad "DEB Depends names HTCondor's bindings, which Debian lacks: $depends"; else ok "DEB Depends: $depends"; fi
expect_in "$(dpkg-deb -f "$deb_file" Recommends)" "DEB Recommends" python3-htcondor
finish_step

step "lintian $deb_file"
lintian_out=$(lintian --fail-on none "$deb_file" 2>&1 | grep -v 'running with root privileges' || true)
[ -z "$lintian_out" ] || sed 's/^/   /' <<<"$lintian_out"
lintian_errors=$(grep -c '^E:' <<<"$lintian_out" || true)
lintian_warnings=$(grep -c '^W:' <<<"$lintian_out" || true)
if [ "$lintian_errors" -gt 0 ]; then bad "lintian: $lintian_errors error(s)"; else ok "lintian: no errors, $lintian_warnings warning(s)"; fi
finish_step

step "install the DEB"
purge_deb
if ! as_root apt-get install "${APT_OPTS[@]}" "$PWD/$deb_file" >/tmp/ci-packages-apt.log 2>&1; then
    tail -n 30 /tmp/ci-packages-apt.log
    bad "apt-get install $deb_file failed"
    finish_step
fi
rm -f /tmp/ci-packages-apt.log
if installed "$PKG"; then ok "$PKG is installed"; else bad "$PKG is not installed"; fi
if [ -f "$DAEMON" ] && [ -x "$DAEMON" ]; then ok "$DAEMON (executable)"; else bad "$DAEMON is not an executable file"; fi
if [ "$(readlink -f /usr/bin/condor_restd)" = "$DAEMON" ]; then ok "/usr/bin/condor_restd -> $DAEMON"; else bad "/usr/bin/condor_restd does not lead to $DAEMON"; fi
for f in "$SNIPPET" "$MANPAGE" /usr/share/doc/$PKG/copyright; do
    if [ -f "$f" ]; then ok "$f"; else bad "$f is missing"; fi
done
expect_in "$(dpkg-query -W -f='${Conffiles}\n' "$PKG" | awk 'NF {print $1}')" "installed conffiles" "$SNIPPET"
# Outside the source tree, so that the installed package is the one imported.
if imported=$(cd / && env -u PYTHONPATH /usr/bin/python3 -c \
        'import condor_restd as m; print(m.__version__, m.__file__)' 2>&1) &&
        [ "${imported%% *}" = "$version" ]; then
    ok "/usr/bin/python3 imports condor_restd $imported"
else
    bad "/usr/bin/python3 cannot import condor_restd $version: $imported"
fi
smoke_test_daemon
finish_step

step "purge the DEB"
purge_deb
if dpkg-query -W "$PKG" >/dev/null 2>&1; then bad "$PKG is still known to dpkg"; else ok "$PKG purged"; fi
for f in "$DAEMON" "$SNIPPET" "$MANPAGE"; do
    if [ -e "$f" ] || [ -L "$f" ]; then bad "$f is still there"; fi
done
finish_step

printf '\nci-packages: PASS (%s, %s; lintian: %d error(s), %d warning(s); %ds)\n' \
    "$(basename "$rpm_file")" "$(basename "$deb_file")" "$lintian_errors" "$lintian_warnings" $((SECONDS - started))
