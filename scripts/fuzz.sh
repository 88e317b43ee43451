#!/bin/sh
# make fuzz: each "package:Target" of $FUZZ fuzzed for $FUZZTIME.
#
# A duration -fuzztime races Go's fuzzing coordinator against its own deadline: on a loaded
# machine it can end with a bare "context deadline exceeded" and exit 1 having found nothing
# (golang/go#51484). A real finding always writes its input under testdata/fuzz/ and says
# "Failing input written to"; that, a panic or any other failure fails the run. A bare deadline
# failure is retried once, then counted as passed only if the target's corpus replays clean.
set -u
GO=${GO:-go}
run() { # pkg target log
	$GO test -run='^$' -fuzz="^$2\$" -fuzztime="$FUZZTIME" "$1" >"$3" 2>&1
}
deadline_only() { # log: the only failure is the coordinator's deadline race
	grep -q '^    context deadline exceeded$' "$1" &&
		! grep -q 'Failing input written to\|panic:\|_test.go:[0-9]*:' "$1"
}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for f in $FUZZ; do
	pkg=${f%%:*} target=${f##*:}
	if ! grep -qs "func $target(" "$pkg"/*_test.go; then
		echo "fuzz: $pkg has no $target" >&2
		exit 1
	fi
	echo "fuzz $pkg $target for $FUZZTIME"
	if run "$pkg" "$target" "$log"; then
		tail -n 3 "$log"
		continue
	fi
	if deadline_only "$log"; then
		echo "fuzz: $target ended on Go's fuzztime deadline race (golang/go#51484), nothing found; once more"
		if run "$pkg" "$target" "$log"; then
			tail -n 3 "$log"
			continue
		fi
		if deadline_only "$log" && $GO test -count=1 -run="^$target\$" "$pkg"; then
			echo "fuzz: $target: the deadline race again, nothing found; its corpus replays clean"
			continue
		fi
	fi
	cat "$log"
	exit 1
done
