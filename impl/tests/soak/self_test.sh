#!/bin/sh
# Proves that shmds-soak's checks can fail: each --self-test-* flag makes
# its workers misbehave on purpose, and the verdict must be FAIL (exit
# status 1) naming the check that caught it. A check that cannot fail would
# let every soak run pass.
# usage: self_test.sh path/to/shmds-soak
soak="$1"
status=0
# Short runs with kills. The slack is generous enough for a loaded 2-vCPU
# machine (no false alarm in the fault-free run) and short enough that the
# injected silence of 1.5 x (timeout + slack) is caught within the run.
common="--seconds 5 --producers 2 --consumers 2 --kill-every-ms 300 --timeout-ms 100 --slack-ms 2000 --progress-every-s 0"
expect_fail() {  # flags (one word-split argument), then what the FAIL verdict must mention
    flag="$1"
    shift
    out=$("$soak" $common $flag 2>&1)
    rc=$?
    caught=yes
    [ "$rc" -eq 1 ] || caught=no
    for what in "$@"; do
        printf '%s\n' "$out" | grep -q "^VERDICT: FAIL.*$what" || caught=no
    done
    if [ "$caught" = yes ]; then
        echo "ok: $flag -> FAIL mentioning: $*"
    else
        echo "NOT CAUGHT: $flag (exit status $rc, wanted 1 and a FAIL verdict mentioning: $*); its output:"
        printf '%s\n' "$out"
        status=1
    fi
}
expect_fail --self-test-duplicate "duplicates"
expect_fail --self-test-loss "lost, more than"
# One element, where no consumer died: within the loss allowance once a
# consumer is killed, so only SPSC's exact account of each loss catches it.
expect_fail "--self-test-lose-one --structures spsc" "no consumer death explains"
expect_fail --self-test-reorder "order violations"
# Without kills: a kill of the silent producer would end its silence unseen.
expect_fail "--self-test-block --kill-every-ms 0" "BLOCKED"
expect_fail --self-test-leak "left behind" "still in /dev/shm"
# Every worker killed at once: the segment goes stale and is started afresh.
expect_fail --self-test-orphan "notices from the library"
# And the same short run without a fault passes.
out=$("$soak" $common 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && printf '%s\n' "$out" | grep -q "^VERDICT: PASS"; then
    echo "ok: no fault -> PASS"
else
    echo "FALSE ALARM: a run without an injected fault did not pass (exit status $rc); its output:"
    printf '%s\n' "$out"
    status=1
fi
exit $status
