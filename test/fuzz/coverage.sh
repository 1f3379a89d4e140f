#!/usr/bin/env bash
# test/fuzz/coverage.sh TARGET [FILE [FUNCTION...]]: which code a fuzz
# target's corpus reaches. Builds TARGET with clang source-based coverage
# (-fprofile-instr-generate -fcoverage-mapping) into build-cov/, runs every
# input of test/fuzz/corpus/TARGET once (libFuzzer -runs=0), and prints
# llvm-cov's per-function report for FILE (default lib/dtls/dtls.c),
# restricted to the FUNCTIONs named (default: all of FILE's).
#
#   test/fuzz/coverage.sh fuzz_dtls lib/dtls/dtls.c promote hs_step compact_read
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
target=${1:?usage: test/fuzz/coverage.sh TARGET [FILE [FUNCTION...]]}
file=${2:-lib/dtls/dtls.c}
shift $(($# >= 2 ? 2 : 1))
out=build-cov
make --no-print-directory -s BUILD=$out \
    FUZZ_FLAGS='-g -O0 -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping -Ilib/include -Ilib $(STD) $(PKG_CFLAGS)' \
    "$out/fuzz/$target"
rm -f "$out/$target".profraw
LLVM_PROFILE_FILE="$out/$target.profraw" "$out/fuzz/$target" -runs=0 \
    "test/fuzz/corpus/$target" >"$out/$target.run.log" 2>&1
llvm-profdata merge -sparse "$out/$target.profraw" -o "$out/$target.profdata"
report=$(llvm-cov report -show-functions "$out/fuzz/$target" -instr-profile="$out/$target.profdata" \
    "$file")
if [ $# -eq 0 ]; then
    echo "$report"
else
    # Header, then the rows of the functions asked for (first column: name).
    awk -v want=" $* " 'NR <= 2 || /^---/ { print; next }
        { n = $1; sub(/^.*:/, "", n); if (index(want, " " n " ")) print }' <<<"$report"
fi
