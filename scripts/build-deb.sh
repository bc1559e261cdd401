#!/usr/bin/env bash
# Builds the Debian package (blackpony_VERSION_all.deb) from the built tree with dpkg-deb: what the
# npm package holds (npm pack: dist, man pages and the bundled production node_modules) laid out as
# Debian expects. Run by `npm run deb`, which builds first; usage: scripts/build-deb.sh [OUT_DIR].
set -euo pipefail
umask 022
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The npm package is the one list of what runs (package.json "files" and bundleDependencies).
# --ignore-scripts: pack what the build made, without building again.
tarball="$(cd "$root" && npm pack --ignore-scripts --silent --pack-destination "$work")"
tar -xzf "$work/$tarball" -C "$work"
package="$work/package"

version="$(node -p 'require(process.argv[1]).version' "$package/package.json")"
# A semver pre-release (1.0.0-rc.1) sorts before its release in Debian only with a tilde.
deb_version="${version//-/\~}"
tree="$work/tree"

install -d "$tree/usr/lib/blackpony" "$tree/usr/bin" "$tree/lib/systemd/system" \
  "$tree/usr/share/man/man5" "$tree/usr/share/man/man8" "$tree/usr/share/doc/blackpony/systemd" \
  "$tree/etc/blackpony" "$tree/DEBIAN"
cp -a "$package/bin" "$package/dist" "$package/node_modules" "$package/package.json" "$tree/usr/lib/blackpony/"
ln -s ../lib/blackpony/bin/blackpony.js "$tree/usr/bin/blackpony"
install -m 0644 "$package/systemd/blackpony.service" "$package/systemd/blackpony.socket" "$tree/lib/systemd/system/"

# Man pages go where man(1) looks, compressed as Debian policy asks (no name or time: reproducible).
mv "$tree/usr/lib/blackpony/dist/man" "$work/man"
gzip -9n -c "$work/man/blackpony.8" > "$tree/usr/share/man/man8/blackpony.8.gz"
gzip -9n -c "$work/man/blackpony.yaml.5" > "$tree/usr/share/man/man5/blackpony.yaml.5.gz"

# The units' Documentation= points at /usr/share/doc/blackpony/systemd/README.md.
docs="$tree/usr/share/doc/blackpony"
cp -a "$package/README.md" "$package/docs/PROTOCOL.md" "$package/docs/PERFORMANCE.md" "$package/deploy" "$docs/"
install -m 0644 "$package/systemd/README.md" "$docs/systemd/"

# The default configuration, set up for the packaged units: port 25 from blackpony.socket and the
# key file that postinst makes. hostname stays a placeholder the administrator must replace.
config="$tree/etc/blackpony/config.yaml"
node "$package/bin/blackpony.js" default-config |
  sed -e 's|^# hostname: \(.*\)  # required$|hostname: \1  # this host'"'"'s name, as in its MX record: set it before starting|' \
    -e 's|^# keys: \(.*\)  # required$|keys: \1  # made by the package'"'"'s postinst|' \
    -e 's|^  listen: 0\.0\.0\.0:25$|  listen: systemd|' > "$config"
for setting in '^hostname: ' '^keys: /etc/blackpony/keys ' '^  listen: systemd$'; do
  grep -q "$setting" "$config" || { echo "build-deb: default-config changed: no line matching '$setting' in $config" >&2; exit 1; }
done
node "$package/bin/blackpony.js" check-config --no-keys "$config" > /dev/null
echo /etc/blackpony/config.yaml > "$tree/DEBIAN/conffiles"

cat > "$tree/DEBIAN/control" <<EOF
Package: blackpony
Version: $deb_version
Architecture: all
Maintainer: blackpony developers <root@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$tree" | cut -f1)
Depends: nodejs (>= 20.19), passwd
Section: mail
Priority: optional
Description: encrypting SMTP sidecar for Postfix
 $(node -p 'require(process.argv[1]).description' "$package/package.json")
EOF
install -m 0755 "$root/scripts/deb/postinst" "$root/scripts/deb/prerm" "$root/scripts/deb/postrm" "$tree/DEBIAN/"

dpkg-deb --root-owner-group -Zxz --build "$tree" "$out/blackpony_${deb_version}_all.deb" > /dev/null
echo "$out/blackpony_${deb_version}_all.deb"
