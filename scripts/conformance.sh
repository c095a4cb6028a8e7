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
# The passthrough works on absolute paths below its source directory: a long one would push the
# suite's socket paths past sun_path's 108 bytes, failing files for the baseline's setup alone.
pt_src="$(mktemp -d /tmp/pt.XXXXXX)"
chmod 0755 "$pt_src"
logs="${CONFORMANCE_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/shoal-conformance-logs.XXXXXX")}"
mkdir -p "$logs"
pt_mnt="$work/pt-mnt"
pt_pid=""
shoal_mnt=""
shoal_pid=""
moto_pid=""
status=0

# Unmounts $1 if it is a mount point; a busy mount is detached (lazily) rather than left.
unmount() {
	mountpoint -q "$1" 2>/dev/null || return 0
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1"
}

stop() {
	[ -n "$1" ] || return 0
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

cleanup() {
	[ -z "$shoal_mnt" ] || unmount "$shoal_mnt"
	stop "$shoal_pid"
	unmount "$pt_mnt"
	stop "$pt_pid"
	stop "$moto_pid"
	# libfuse's passthrough shows the whole root file system: a removal that went through a
	# mount still there would delete /. Remove nothing while anything below is mounted, and
	# never cross into another file system.
	if grep -qF -e " $work/" -e " $pt_src " /proc/self/mounts; then
		echo "still mounted below $work or at $pt_src: left in place" >&2
		return
	fi
	rm -rf --one-file-system "$work" "$pt_src"
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
	mkdir -p "$pt_mnt"
	"$passthrough" -f -o allow_other,default_permissions "$pt_mnt" 2>"$work/pt.err" &
	pt_pid=$!
	if wait_mounted "$pt_mnt" "$pt_pid"; then
		# The passthrough shows the whole root: the suite runs in its view of pt_src.
		run_suite "$pt_mnt$pt_src" "$logs/passthrough.log" \
			"passthrough -o allow_other,default_permissions"
	else
		echo "the passthrough did not mount: $(cat "$work/pt.err")" >&2
		status=1
	fi
	unmount "$pt_mnt"
	stop "$pt_pid"
	pt_pid=""
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
