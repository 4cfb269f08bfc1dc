#!/usr/bin/env bash
# Run the frozen app's self-test twice: with Qt's offscreen platform and under a real X server
# (Xvfb through xvfb-run), because the two fail differently (missing xcb libraries show only
# under X). Extra arguments go to `lesionviewer --self-test` (e.g. --models DIR).
#
#   bash packaging/selftest_frozen.sh [--models DIR] [--self-test-photos DIR]
#   LESIONVIEWER_APP=path/to/lesionviewer bash packaging/selftest_frozen.sh
set -uo pipefail
cd "$(dirname "$0")/.."
APP=${LESIONVIEWER_APP:-dist/lesionviewer/lesionviewer}
if [[ ! -x "$APP" ]]; then
  echo "selftest_frozen: no frozen app at $APP (run: bash packaging/build.sh)" >&2
  exit 2
fi
status=0

echo "== self-test of the frozen app, QT_QPA_PLATFORM=offscreen"
if ! env -u DISPLAY -u WAYLAND_DISPLAY QT_QPA_PLATFORM=offscreen "$APP" --self-test "$@"; then
  echo "selftest_frozen: offscreen self-test FAILED" >&2
  status=1
fi

echo "== self-test of the frozen app under Xvfb (xcb platform plugin)"
if command -v xvfb-run >/dev/null 2>&1; then
  if ! env -u QT_QPA_PLATFORM -u WAYLAND_DISPLAY \
      xvfb-run -a -s "-screen 0 1600x1000x24 -nolisten tcp" "$APP" --self-test "$@"; then
    echo "selftest_frozen: Xvfb self-test FAILED" >&2
    status=1
  fi
else
  echo "selftest_frozen: xvfb-run not found (apt-get install xvfb xauth); X11 check not run" >&2
  status=1
fi
exit $status
