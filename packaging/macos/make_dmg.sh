#!/usr/bin/env bash
# Make a drag-to-Applications disk image from the PyInstaller .app (macOS only).
#
#   packaging/macos/make_dmg.sh dist/ftrag-desktop.app dist/ftrag-desktop-0.1.0-macos-arm64.dmg
#
# packaging/build.py runs this after PyInstaller.  The .app's Info.plist (bundle id
# org.ftrag.desktop, version, icon, folder-access texts) comes from the BUNDLE in
# packaging/ftrag_desktop.spec; this script checks it rather than editing it.
#
# Signing and notarisation (optional; both need an Apple Developer account):
#   FTRAG_CODESIGN_IDENTITY="Developer ID Application: …"  at build time: PyInstaller signs
#                                                          the .app; the .dmg is signed here
#   FTRAG_NOTARY_PROFILE=<keychain profile>                here: notarise and staple the .dmg
#     (create the profile once: xcrun notarytool store-credentials <profile> …)
set -euo pipefail

APP="${1:?usage: make_dmg.sh path/to/ftrag-desktop.app output.dmg}"
OUT="${2:?usage: make_dmg.sh path/to/ftrag-desktop.app output.dmg}"
BUNDLE_ID="org.ftrag.desktop"
VOLUME="ftrag-desktop"

if [[ "$(uname -s)" != "Darwin" ]]; then
  echo "make_dmg.sh needs macOS (hdiutil)" >&2
  exit 1
fi
for exe in ftrag-desktop ftrag; do
  [[ -x "$APP/Contents/MacOS/$exe" ]] || { echo "$APP/Contents/MacOS/$exe is missing" >&2; exit 1; }
done
plist="$APP/Contents/Info.plist"
found_id="$(/usr/libexec/PlistBuddy -c 'Print :CFBundleIdentifier' "$plist")"
if [[ "$found_id" != "$BUNDLE_ID" ]]; then
  echo "$plist: CFBundleIdentifier is $found_id, expected $BUNDLE_ID" >&2
  exit 1
fi
version="$(/usr/libexec/PlistBuddy -c 'Print :CFBundleShortVersionString' "$plist")"

# The bundle must pass its own self-test before it is shipped.
"$APP/Contents/MacOS/ftrag-desktop" --self-test

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
ditto "$APP" "$stage/ftrag-desktop.app"        # keeps symlinks, resource forks, signatures
ln -s /Applications "$stage/Applications"     # drag the app onto this

rm -f "$OUT"
hdiutil create -volname "$VOLUME $version" -srcfolder "$stage" -fs HFS+ \
  -format UDZO -imagekey zlib-level=9 -ov "$OUT" >/dev/null

if [[ -n "${FTRAG_CODESIGN_IDENTITY:-}" ]]; then
  codesign --force --timestamp --sign "$FTRAG_CODESIGN_IDENTITY" "$OUT"
fi
if [[ -n "${FTRAG_NOTARY_PROFILE:-}" ]]; then
  xcrun notarytool submit "$OUT" --keychain-profile "$FTRAG_NOTARY_PROFILE" --wait
  xcrun stapler staple "$OUT"
fi
hdiutil verify "$OUT" >/dev/null
echo "$OUT ($(du -h "$OUT" | cut -f1))"
