# Sourced by the shell test scripts (scripts/test-package, test-aarch64, test-clone, fuzz) and by
# bench/lib.sh for its --smoke runs: counts, one line per check, the loud SKIPPED that fails under
# CI=true. The sourcing script sets `suite` (its name in the summary line scripts/test-all and .ci/run
# count).
passed=0
failed=0
finish() {
    echo "$suite: $passed passed, $failed failed"
    ((failed == 0))
    exit
}
skip() {
    echo "*** SKIPPED $suite: $1 ***"
    if [[ ${CI:-} == true ]]; then
        failed=$((failed + 1))
        echo "(CI=true: a skipped test is a failure)"
    fi
    finish
}
# check NAME COMMAND...: one test; the command's output is shown when it fails.
check() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "ok      $name"
        passed=$((passed + 1))
    else
        echo "FAILED  $name"
        printf '%s\n' "$out" | sed 's/^/        /'
        failed=$((failed + 1))
    fi
}
