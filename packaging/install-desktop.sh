#!/bin/sh
# Put Synth Studio in the desktop's application menu, for the current user only:
# the .desktop entry into $XDG_DATA_HOME/applications and the icon into the hicolor theme.
#
#   packaging/install-desktop.sh [PATH-TO-synth-studio]
#
# The entry runs the synth-studio it is given (default: the one on PATH) by its absolute
# path, because a menu launch does not see a virtual environment's bin/ folder.
# `make install-desktop` runs this with the project's .venv. Undo: delete the two files.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exe=${1:-$(command -v synth-studio || true)}
if [ -z "$exe" ] || [ ! -x "$exe" ]; then
    echo "install-desktop: no synth-studio executable found; pass its path (e.g. .venv/bin/synth-studio)" >&2
    exit 2
fi
exe=$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")
data=${XDG_DATA_HOME:-$HOME/.local/share}
apps=$data/applications
icons=$data/icons/hicolor/scalable/apps
mkdir -p "$apps" "$icons"
# the desktop spec quotes arguments with double quotes; a path with spaces needs them
sed "s|^Exec=synth-studio |Exec=\"$exe\" |" "$here/synth-studio.desktop" > "$apps/synth-studio.desktop"
cp "$here/../resources/icons/synth-studio.svg" "$icons/synth-studio.svg"
# refresh the menu and icon caches where the tools exist; not having them is fine
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$data/icons/hicolor" || true
echo "installed $apps/synth-studio.desktop (runs $exe) and $icons/synth-studio.svg"
