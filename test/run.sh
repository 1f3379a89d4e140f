#!/usr/bin/env bash
# Runs every test: cmocka unit tests, integration tests (real processes on
# loopback), the unit tests and the main integration tests again under
# ASan+UBSan, and a short run of each fuzz target over its corpus.
# Last line: "N passed, N failed, N skipped". Exit status non-zero on any
# failure. A skip is a cmocka skip() or a TAP "ok - ... # SKIP" line of an
# integration test (lib.sh: skip, skip_needs); under CI=true, skip_needs
# (a dependency that `make test` itself provides) is already a failure, and
# so is a fuzz target that was not built.
set -u
BUILD=${BUILD:-build}
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-15}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export TETHER_TOP=$top TETHER_BUILD=$top/$BUILD
passed=0
failed=0
skipped=0
failures=()
skips=()
out=$(mktemp -d /tmp/tether-test.XXXXXX)

# run_unit BUILD_DIR PREFIX: every cmocka binary of BUILD_DIR/test.
run_unit() {
    local dir=$1 pre=$2 t n rc p f s
    for t in "$dir"/test/test_*; do
        [ -x "$t" ] || continue
        n=$pre$(basename "$t")
        "$t" >"$out/$n.log" 2>&1
        rc=$?
        p=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) test.*/\1/p' "$out/$n.log" | tail -n1)
        f=$(sed -nE 's/^\[  FAILED  \] ([0-9]+) test.*/\1/p' "$out/$n.log" | tail -n1)
        s=$(sed -nE 's/^\[  SKIPPED \] ([0-9]+) test.*/\1/p' "$out/$n.log" | tail -n1)
        p=${p:-0}
        f=${f:-0}
        s=${s:-0}
        skipped=$((skipped + s))
        # cmocka names a skipped test twice (as it runs and in the summary)
        [ "$s" -gt 0 ] && skips+=("$n: $(sed -nE 's/^\[  SKIPPED \] (test_.*)/\1/p' "$out/$n.log" | sort -u | tr '\n' ' ')")
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi # crashed before its summary
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$f" -gt 0 ]; then
            failures+=("$n")
            echo "FAIL $n ($p passed, $f failed)"
            grep -E '^\[  (FAILED|ERROR)|Failure|ERROR|error' "$out/$n.log" | head -20 | sed 's/^/    /'
        else
            echo "ok   $n ($p$([ "$s" -gt 0 ] && echo ", $s skipped"))"
        fi
    done
}

# run_integration BUILD_DIR PREFIX SCRIPT...: each script against BUILD_DIR's
# binaries. Integration tests mostly wait (for handshakes, lifetimes,
# timeouts), so up to TEST_JOBS of them run at once (default 2: this is
# also what makes the suite fit its time budget); every test picks free
# ports and names its network namespaces after its pid, so they never
# collide. A script that measures rates or times against what the machine
# can do says `# tether-test: serial` and runs alone, after the others.
# Results are reported in script order whatever order they finished in.
TEST_JOBS=${TEST_JOBS:-2}
run_integration() {
    local dir=$1 pre=$2 t n rc p f s secs st
    shift 2
    local parallel=() serial=()
    for t in "$@"; do
        [ -f "$t" ] || continue
        if grep -q '^# tether-test: serial' "$t"; then serial+=("$t"); else parallel+=("$t"); fi
    done
    for t in ${parallel[@]+"${parallel[@]}"}; do
        while [ "$(jobs -rp | wc -l)" -ge "$TEST_JOBS" ]; do wait -n 2>/dev/null || true; done
        n=$pre$(basename "$t" .sh)
        (
            st=$SECONDS
            TETHER_BUILD=$dir timeout 600 bash "$t" >"$out/$n.log" 2>&1
            echo "$? $((SECONDS - st))" >"$out/$n.rc"
        ) &
    done
    wait
    for t in ${serial[@]+"${serial[@]}"}; do
        n=$pre$(basename "$t" .sh)
        st=$SECONDS
        TETHER_BUILD=$dir timeout 600 bash "$t" >"$out/$n.log" 2>&1
        echo "$? $((SECONDS - st))" >"$out/$n.rc"
    done
    for t in "$@"; do
        [ -f "$t" ] || continue
        n=$pre$(basename "$t" .sh)
        read -r rc secs <"$out/$n.rc" 2>/dev/null || { rc=1; secs=?; }
        p=$(grep '^ok ' "$out/$n.log" | grep -vc '# SKIP')
        s=$(grep -c '^ok .*# SKIP' "$out/$n.log")
        f=$(grep -c '^not ok ' "$out/$n.log")
        skipped=$((skipped + s))
        [ "$s" -gt 0 ] && skips+=("$n: $(sed -nE 's/^ok - (.*) # SKIP.*/\1/p' "$out/$n.log" | tr '\n' ';')")
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$f" -gt 0 ]; then
            failures+=("$n")
            echo "FAIL $n ($p passed, $f failed, exit $rc, ${secs} s)"
            grep -E '^(not ok|#)' "$out/$n.log" | head -30 | sed 's/^/    /'
            tail -n 15 "$out/$n.log" | sed 's/^/    | /'
        else
            echo "ok   $n ($p$([ "$s" -gt 0 ] && echo ", $s skipped"), ${secs} s)"
        fi
    done
}

echo "== unit tests"
section=$SECONDS
run_unit "$top/$BUILD" ""

echo "== integration tests"
section=$SECONDS
run_integration "$top/$BUILD" "" test/integration/test_*.sh

# SPEC S10: the same code under AddressSanitizer and UndefinedBehaviorSanitizer
# (any report aborts the process): every unit test, and the integration tests
# that drive the DTLS, proxy, observe, cluster and admin paths of tetherd.
echo "== (integration tests took $((SECONDS - section)) s)"
echo "== ASan+UBSan (build-san)"
section=$SECONDS
if make --no-print-directory -j"${JOBS:-2}" SANITIZER=address,undefined BUILD=build-san binaries \
    >"$out/san-build.log" 2>&1; then
    run_unit "$top/build-san" "san:"
    run_integration "$top/build-san" "san:" test/integration/test_relay.sh \
        test/integration/test_admin_devices.sh test/integration/test_observe.sh \
        test/integration/test_cluster.sh test/integration/test_cache.sh \
        test/integration/test_blockwise.sh
else
    failed=$((failed + 1))
    failures+=("san-build")
    echo "FAIL sanitizer build"
    tail -n 20 "$out/san-build.log" | sed 's/^/    /'
fi

echo "== (sanitizer build and tests took $((SECONDS - section)) s)"
echo "== fuzz smoke (${FUZZ_SMOKE_SECONDS}s each)"
section=$SECONDS
for src in test/fuzz/fuzz_*.c; do
    n=$(basename "$src" .c)
    [ -x "$BUILD/fuzz/$n" ] && continue
    if [ "${CI:-}" = true ]; then # make test builds them (make fuzz-bins)
        failed=$((failed + 1))
        failures+=("$n")
        echo "FAIL $n: not built (CI=true: make test builds every fuzz target)"
    else
        skipped=$((skipped + 1))
        skips+=("$n: not built")
        echo "skip $n (not built)"
    fi
done
# Each target is one process on one core: TEST_JOBS of them at once, each
# for its full FUZZ_SMOKE_SECONDS; results in name order.
fuzzers=()
for f in "$BUILD"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    n=$(basename "$f")
    fuzzers+=("$n")
    while [ "$(jobs -rp | wc -l)" -ge "$TEST_JOBS" ]; do wait -n 2>/dev/null || true; done
    (
        corpus=test/fuzz/corpus/$n
        work=$out/corpus-$n
        mkdir -p "$work"
        "$f" -max_total_time="$FUZZ_SMOKE_SECONDS" -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="$out/$n-" "$work" "$corpus" >"$out/$n.log" 2>&1
        echo $? >"$out/$n.rc"
    ) &
done
wait
for n in ${fuzzers[@]+"${fuzzers[@]}"}; do
    if [ "$(cat "$out/$n.rc" 2>/dev/null)" = 0 ]; then
        passed=$((passed + 1))
        echo "ok   $n"
    else
        failed=$((failed + 1))
        failures+=("$n")
        echo "FAIL $n"
        grep -E 'ERROR|SUMMARY|crash-|leak' "$out/$n.log" | head -10 | sed 's/^/    /'
    fi
done
echo "== (fuzz smoke took $((SECONDS - section)) s; the suite $SECONDS s)"

for k in "${skips[@]-}"; do [ -n "$k" ] && echo "skipped: $k"; done
if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]} (logs in $out)"
else
    rm -rf "$out"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
