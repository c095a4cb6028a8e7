#!/usr/bin/env bash
# Runs pjdfstest (https://github.com/pjd/pjdfstest, fetched and built outside this repository)
# over libfuse's C passthrough and over a Shoal mount of a local UFS, and compares the failed
# test files. docs/mount.md, "POSIX conformance", says how to get the suite and what to expect.
#
# usage (as root: the suite switches to other users):
#   scripts/conformance.sh PJDFSTEST_DIR [--only passthrough|shoal|s3] [--s3] [TEST_DIR...]
#
# PJDFSTEST_DIR holds the built `pjdfstest` binary and tests/ (conf, misc.sh, <syscall>/NN.t).
# --s3 adds a third side: Shoal over S3 (moto's server over HTTP on 127.0.0.1, as the tests use);
# --only runs one side alone.
# TEST_DIR... (relative to PJDFSTEST_DIR/tests, e.g. `rename unlink/14.t`) runs only those.
# PASSTHROUGH names libfuse's example/passthrough binary (default /tmp/passthrough/passthrough);
# PYTHON the interpreter with Shoal's dependencies (default: this checkout's .venv, else python3).
# Each side prints its failed files and their count; the exit status is 1 when a Shoal daemon
# died (its mount is gone or its process exited before the unmount), else 0. Only what this
# script made (one scratch directory under ${TMPDIR:-/tmp}, two mounts) is removed; prove's logs
# stay in a directory of their own (printed), or in $CONFORMANCE_LOGS when set.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
pjd="${1:?usage: $0 PJDFSTEST_DIR [--only passthrough|shoal|s3] [--s3] [TEST_DIR...]}"
pjd="$(cd "$pjd" && pwd)"
shift
sides="passthrough shoal"
while [ $# -gt 0 ]; do
	case "$1" in
	--only) sides="${2:?--only needs passthrough, shoal or s3}"; shift 2 ;;
	--s3) sides="$sides s3"; shift ;;
	*) break ;;
	esac
done
targets=()
for t in "$@"; do targets+=("$pjd/tests/$t"); done
[ ${#targets[@]} -gt 0 ] || targets=("$pjd/tests")

passthrough="${PASSTHROUGH:-/tmp/passthrough/passthrough}"
python="${PYTHON:-}"
if [ -z "$python" ]; then
	if [ -x "$repo/.venv/bin/python" ]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi
[ -x "$pjd/pjdfstest" ] || { echo "no built pjdfstest in $pjd" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root: the suite switches to uid 65534 and others" >&2; exit 2; }
command -v prove >/dev/null || { echo "prove (perl) is needed" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/shoal-conformance.XXXXXX")"
# The suite's users must reach the mounts' working directories.
chmod 0755 "$work"
logs="${CONFORMANCE_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/shoal-conformance-logs.XXXXXX")}"
mkdir -p "$logs"
pt_mnt="$work/pt-mnt"
shoal_mnt=""
shoal_pid=""
moto_pid=""
status=0

cleanup() {
	if [ -n "$shoal_mnt" ] && mountpoint -q "$shoal_mnt" 2>/dev/null; then
		fusermount3 -u "$shoal_mnt" 2>/dev/null
	fi
	if [ -n "$shoal_pid" ] && kill -0 "$shoal_pid" 2>/dev/null; then
		kill "$shoal_pid" 2>/dev/null
		wait "$shoal_pid" 2>/dev/null
	fi
	mountpoint -q "$pt_mnt" 2>/dev/null && fusermount3 -u "$pt_mnt"
	if [ -n "$moto_pid" ]; then
		kill "$moto_pid" 2>/dev/null
		wait "$moto_pid" 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# Runs prove from inside $1, writes the log to $2 and prints the failed files.
run_suite() {
	local dir="$1" log="$2" name="$3"
	(cd "$dir" && prove -r "${targets[@]}") >"$log" 2>&1
	local failed
	# A file failed when prove's summary gives it a non-zero wait status, failed tests or parse
	# errors (a bad plan); "TODO passed" alone is listed there too but is no failure.
	failed="$(sed -n '/^Test Summary Report/,$p' "$log" | awk '
		match($0, /tests\/[a-z_]+\/[0-9]+\.t/) {
			cur = substr($0, RSTART + 6, RLENGTH - 8)
			if ($0 !~ /Wstat: 0 / || $0 !~ /Failed: 0\)/) print cur
			next
		}
		/^ +(Failed tests|Parse errors):/ { print cur }' | sort -u)"
	local files
	files="$(grep -oE 'tests/[a-z_]+/[0-9]+\.t \.+' "$log" | wc -l)"
	echo "== $name: $(printf '%s' "$failed" | grep -c .) failed of $files files (log: $log)"
	[ -z "$failed" ] || printf '%s\n' "$failed" | paste -sd' '
}

wait_mounted() {
	local mnt="$1" pid="$2"
	for _ in $(seq 1 300); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

in_sides() { case " $sides " in *" $1 "*) return 0 ;; esac; return 1; }

# Mounts Shoal (home $work/home-NAME) over URI at $work/NAME-mnt with OPTION..., runs the suite
# there, checks that its daemon lived to the end and unmounts.
shoal_side() {
	local name="$1" uri="$2" title="$3"
	shift 3
	shoal_mnt="$work/$name-mnt"
	mkdir -p "$shoal_mnt"
	PYTHONPATH="$repo" "$python" -m cli.main --home "$work/home-$name" mount "$uri" "$shoal_mnt" \
		-o allow_other "$@" --foreground </dev/null >"$work/$name-daemon.out" 2>&1 &
	shoal_pid=$!
	if ! wait_mounted "$shoal_mnt" "$shoal_pid"; then
		echo "the Shoal mount ($name) did not come up:" >&2
		cat "$work/$name-daemon.out" >&2
		status=1
		return
	fi
	run_suite "$shoal_mnt" "$logs/$name.log" "$title"
	if kill -0 "$shoal_pid" 2>/dev/null && mountpoint -q "$shoal_mnt" && stat "$shoal_mnt" >/dev/null
	then
		echo "== $name: the Shoal daemon was alive at the end: 0 deaths"
	else
		echo "== $name: the Shoal daemon DIED during the run (1 death); the end of its log:"
		tail -n 50 "$work/home-$name/logs/shoal.log" 2>/dev/null
		status=1
	fi
	cp "$work/home-$name/logs/shoal.log" "$logs/$name-daemon.log" 2>/dev/null
	PYTHONPATH="$repo" "$python" -m cli.main --home "$work/home-$name" umount "$shoal_mnt" \
		>/dev/null 2>&1 || status=1
	wait "$shoal_pid" 2>/dev/null
	shoal_pid=""
}

if in_sides passthrough; then
	[ -x "$passthrough" ] || { echo "no passthrough binary at $passthrough" >&2; exit 2; }
	mkdir -p "$work/pt-src" "$pt_mnt"
	"$passthrough" -o allow_other,default_permissions "$pt_mnt"
	# The passthrough shows the whole root: the suite runs in its view of pt-src.
	run_suite "$pt_mnt$work/pt-src" "$logs/passthrough.log" \
		"passthrough -o allow_other,default_permissions"
	fusermount3 -u "$pt_mnt"
fi

if in_sides shoal; then
	mkdir -p "$work/ufs"
	shoal_side shoal "$work/ufs" "Shoal over a local UFS, -o allow_other"
fi

if in_sides s3; then
	s3py() { PYTHONPATH="$repo" "$python" -c "$1"; }
	port="$(s3py 'from cli.bench.s3server import free_port; print(free_port())')"
	endpoint="http://127.0.0.1:$port"
	"$python" -m moto.server -H 127.0.0.1 -p "$port" >"$work/moto.out" 2>&1 &
	moto_pid=$!
	s3py "
import time, urllib.request
from cli.bench.s3server import s3_client
for _ in range(300):
    try:
        urllib.request.urlopen('$endpoint/moto-api/', timeout=1).read()
        break
    except OSError:
        time.sleep(0.1)
s3_client('$endpoint').create_bucket(Bucket='conformance')"
	access="$(s3py 'from cli.bench.s3server import ACCESS_KEY; print(ACCESS_KEY)')"
	# The secret in a 0600 file, never in an argv (docs/configuration.md).
	(umask 077 && s3py 'from cli.bench.s3server import SECRET_KEY; print(SECRET_KEY)' \
		>"$work/s3-secret")
	shoal_side s3 s3://conformance/ds "Shoal over S3 (moto over HTTP), -o allow_other" \
		-o endpoint="$endpoint" -o path_style=true -o region=us-east-1 \
		-o access_key="$access" -o secret_key_file="$work/s3-secret"
fi
exit "$status"
