#!/usr/bin/env bash
# Runs pjdfstest (https://github.com/pjd/pjdfstest, fetched and built outside this repository)
# over libfuse's C passthrough and over a Shoal mount of a local UFS, and compares the failed
# test files. docs/mount.md, "POSIX conformance", says how to get the suite and what to expect.
#
# usage (as root: the suite switches to other users):
#   scripts/conformance.sh PJDFSTEST_DIR [--only passthrough|shoal] [TEST_DIR...]
#
# PJDFSTEST_DIR holds the built `pjdfstest` binary and tests/ (conf, misc.sh, <syscall>/NN.t).
# TEST_DIR... (relative to PJDFSTEST_DIR/tests, e.g. `rename unlink/14.t`) runs only those.
# PASSTHROUGH names libfuse's example/passthrough binary (default /tmp/passthrough/passthrough);
# PYTHON the interpreter with Shoal's dependencies (default: this checkout's .venv, else python3).
# Each side prints its failed files and their count; the exit status is 1 when the Shoal daemon
# died (its mount is gone or its process exited before the unmount), else 0. Only what this
# script made (one scratch directory under ${TMPDIR:-/tmp}, two mounts) is removed; prove's logs
# stay in a directory of their own (printed), or in $CONFORMANCE_LOGS when set.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
pjd="${1:?usage: $0 PJDFSTEST_DIR [--only passthrough|shoal] [TEST_DIR...]}"
pjd="$(cd "$pjd" && pwd)"
shift
only=""
if [ "${1:-}" = "--only" ]; then
	only="${2:?--only needs passthrough or shoal}"
	shift 2
fi
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
shoal_mnt="$work/shoal-mnt"
shoal_pid=""
status=0

shoal() { PYTHONPATH="$repo" "$python" -m cli.main --home "$work/home" "$@"; }

cleanup() {
	if mountpoint -q "$shoal_mnt" 2>/dev/null; then
		shoal umount "$shoal_mnt" >/dev/null 2>&1 || fusermount3 -u "$shoal_mnt" 2>/dev/null
	fi
	if [ -n "$shoal_pid" ] && kill -0 "$shoal_pid" 2>/dev/null; then
		kill "$shoal_pid" 2>/dev/null
		wait "$shoal_pid" 2>/dev/null
	fi
	mountpoint -q "$pt_mnt" 2>/dev/null && fusermount3 -u "$pt_mnt"
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

if [ "$only" != "shoal" ]; then
	[ -x "$passthrough" ] || { echo "no passthrough binary at $passthrough" >&2; exit 2; }
	mkdir -p "$work/pt-src" "$pt_mnt"
	"$passthrough" -o allow_other,default_permissions "$pt_mnt"
	# The passthrough shows the whole root: the suite runs in its view of pt-src.
	run_suite "$pt_mnt$work/pt-src" "$logs/passthrough.log" \
		"passthrough -o allow_other,default_permissions"
	fusermount3 -u "$pt_mnt"
fi

if [ "$only" != "passthrough" ]; then
	mkdir -p "$work/ufs" "$shoal_mnt"
	shoal mount "$work/ufs" "$shoal_mnt" -o allow_other --foreground \
		>"$work/shoal-daemon.out" 2>&1 &
	shoal_pid=$!
	if ! wait_mounted "$shoal_mnt" "$shoal_pid"; then
		echo "the Shoal mount did not come up:" >&2
		cat "$work/shoal-daemon.out" >&2
		exit 1
	fi
	run_suite "$shoal_mnt" "$logs/shoal.log" "Shoal over a local UFS, -o allow_other"
	if kill -0 "$shoal_pid" 2>/dev/null && mountpoint -q "$shoal_mnt" && stat "$shoal_mnt" >/dev/null; then
		echo "== Shoal daemon alive at the end: 0 deaths"
	else
		echo "== Shoal daemon DIED during the run (1 death); its log:"
		tail -n 50 "$work/home/logs/shoal.log" 2>/dev/null
	cp "$work/home/logs/shoal.log" "$logs/shoal-daemon.log" 2>/dev/null
		status=1
	fi
	shoal umount "$shoal_mnt" >/dev/null 2>&1 || status=1
	wait "$shoal_pid" 2>/dev/null
	shoal_pid=""
fi
exit "$status"
