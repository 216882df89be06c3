#!/usr/bin/env bash
# Regenerate the committed CI baseline, reports/baseline/ci, at the current commit.
#
# This is the deliberate act that accepts a change of the in-house solver's speed or work counts:
# the new table's environment.json records the commit it was measured at, and that commit becomes
# REF, the baseline build of the paired gate (qpbench compare reports/baseline/ci --paired). The
# tree must be clean, so that REF holds exactly the code that was measured; commit the result on
# its own ("CI baseline regenerated at <commit>: <why>"). Run it on the machine class CI runs on,
# as quiet as it gets (the unpaired fallback compares with this table's in-run ratios). The suite
# is measured the way the unpaired check measures: each case's solvers timed in turn (qpbench
# compare --record), so that the table's in-house / Clarabel ratios are taken at equal moments.
# docs/regression.md. Usage: scripts/update_baseline.sh [SUITE=ci]
set -euo pipefail
SUITE=${1:-ci}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
QPBENCH=${QPBENCH:-qpbench}

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "update_baseline: the working tree has uncommitted changes; commit them first, so that the" >&2
    echo "baseline's recorded commit holds the code it measured" >&2
    exit 2
fi
COMMIT=$(git rev-parse HEAD)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Measured outside the checkout, so that the tree stays clean while the run records its commit.
"$QPBENCH" compare --record "$WORK/$SUITE" --suite "$SUITE" --pairs 48
RECORDED=$(python -c 'import sys; from qpbench.results import load_environment; g = load_environment(sys.argv[1])["git"]; print(g["commit"], g["dirty"])' \
    "$WORK/$SUITE")
if [ "$RECORDED" != "$COMMIT False" ]; then
    echo "update_baseline: the run recorded commit/dirty '$RECORDED', expected '$COMMIT False'" >&2
    echo "(is \$QPBENCH this checkout's qpbench? QPBENCH=$QPBENCH)" >&2
    exit 1
fi
# The new table must pass against a fresh measurement of the same code: a baseline session that
# caught a shift of its own (or a machine too noisy to judge) would bias every later comparison.
if ! "$QPBENCH" compare "$WORK/$SUITE" --suite "$SUITE" --output "$WORK/check.md" >/dev/null; then
    echo "update_baseline: the new baseline did not pass against a fresh measurement of the same code:" >&2
    sed -n '/^VERDICT/,$p' "$WORK/check.md" >&2
    echo "the machine is too noisy now, or the session was an outlier; nothing was changed, run it again" >&2
    exit 1
fi
rm -rf "reports/baseline/$SUITE"
mkdir -p "reports/baseline/$SUITE"
cp "$WORK/$SUITE/results.jsonl" "$WORK/$SUITE/environment.json" "reports/baseline/$SUITE/"
echo "reports/baseline/$SUITE regenerated at $COMMIT; now commit it:"
echo "  git add reports/baseline/$SUITE && git commit -m 'CI baseline regenerated at ${COMMIT:0:12}: <why>'"
