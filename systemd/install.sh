#!/bin/sh
# Install pitwin as a systemd service: sudo systemd/install.sh [install|uninstall] [options]
#
#   sudo systemd/install.sh                      # from this checkout
#   sudo systemd/install.sh install --source pitwin-0.1.0-py3-none-any.whl
#   sudo systemd/install.sh install --upgrade    # reinstall pitwin, restart
#   sudo systemd/install.sh uninstall [--purge]  # --purge: config and state too
#   systemd/install.sh install --root /tmp/img   # into a staging root ($DESTDIR)
#
# The work is done by agent/install.py with the system's python3 (standard
# library only), so nothing needs to be installed first.
set -eu
checkout=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
case "${1:-}" in
    install | uninstall) ;;
    *) set -- install "$@" ;;
esac
PYTHONPATH="$checkout${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m agent.install "$@"
