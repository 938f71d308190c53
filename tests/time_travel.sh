#!/usr/bin/env bash
# The whole suite at dates and times that break date arithmetic (`make test-time-travel`): each run starts the
# session at one instant under time-machine (`pytest --at`, ticking from there; the worker process travels
# too, see tests/conftest.py). Extra arguments go to pytest, e.g. `tests/time_travel.sh tests/records -x`.
#
#   a Saturday (weekend rules)                            2027-01-09 12:00 in Chicago
#   29 February 2028 (a year after it has no such day)    2028-02-29 12:00 UTC
#   US DST starts, Chicago, a minute before 02:00         2027-03-14 01:59 -06:00
#   US DST ends, Chicago, inside the hour that repeats    2027-11-07 01:30 -05:00 (the first 01:30)
#   EU DST starts and ends, a minute before 01:00 UTC     2027-03-28 00:59 UTC, 2027-10-31 00:59 UTC
#   31 December 23:30 in the demo clinics' zones          Chicago (-06:00) and New York (-05:00)
set -uo pipefail
cd "$(dirname "$0")/.."

INSTANTS=(
  "2027-01-09T12:00:00-06:00"
  "2028-02-29T12:00:00+00:00"
  "2027-03-14T01:59:00-06:00"
  "2027-11-07T01:30:00-05:00"
  "2027-03-28T00:59:00+00:00"
  "2027-10-31T00:59:00+00:00"
  "2026-12-31T23:30:00-06:00"
  "2026-12-31T23:30:00-05:00"
)
PROCESSES="${TEST_PROCESSES:-2}"
failed=()
for instant in "${INSTANTS[@]}"; do
  echo "== the suite at $instant"
  if ! .venv/bin/pytest -n "$PROCESSES" -q -p no:cacheprovider --at "$instant" "$@"; then
    failed+=("$instant")
  fi
done
if ((${#failed[@]})); then
  echo "== failed at: ${failed[*]}"
  exit 1
fi
echo "== passed at every instant"
