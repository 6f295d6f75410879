# make deb: the Debian package (debian/), built by dpkg-buildpackage in a
# copy of this tree under $(DEB_DIR), so the checkout's build/ and debian/
# stay as they are (a package build starts with `make clean`). The .deb,
# and the .changes that lintian reads, land in $(DEB_DIR).
#   make deb [DEB_DIR=build/deb] [DEB_BUILD_FLAGS="-us -uc -b"]
# Needs dpkg-dev, debhelper and debian/control's Build-Depends
# (apt-get build-dep ./ installs them); tests/package/run.sh tests it all.
DEB_DIR ?= build/deb
DEB_BUILD_FLAGS ?= -us -uc -b

.PHONY: deb
deb:
	@command -v dpkg-buildpackage >/dev/null 2>&1 || \
	  { echo "make deb: dpkg-buildpackage not found (apt-get install dpkg-dev debhelper)" >&2; exit 1; }
	rm -rf $(DEB_DIR)/verona-[0-9]* $(DEB_DIR)/verona_* $(DEB_DIR)/verona-dbgsym_*
	@mkdir -p $(DEB_DIR)
	set -e; src=$(DEB_DIR)/verona-$$(dpkg-parsechangelog -l debian/changelog -S Version); \
	  mkdir -p $$src; \
	  tar -cf - --exclude=./build --exclude=./var --exclude=./debian/verona --exclude=./debian/.debhelper --exclude=./$(patsubst ./%,%,$(DEB_DIR)) . | tar -C $$src --no-same-owner -xf -; \
	  cd $$src && dpkg-buildpackage $(DEB_BUILD_FLAGS)
	@ls -1 $(DEB_DIR)/*.deb
