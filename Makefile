# Packages for condor_restd.
#
#   make rpm        the EL9 RPM (and its SRPM), from packaging/rpm/condor-restd.spec
#   make deb        the Debian package, from packaging/debian/
#   make packages   both
#   make clean      remove build/ and dist/
#
# Everything is built under build/ and the finished packages are copied to dist/
# (both are ignored by git).  packaging/ci-packages.sh installs the tools these
# targets need on Debian and checks what they produce.

NAME    := condor_restd
PKG     := condor-restd
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' condor_restd/__init__.py)
BUILD   := build
DIST    := dist
TARBALL := $(DIST)/$(NAME)-$(VERSION).tar.gz
SNIPPET := condor_config.d/50-condor-restd.conf
DEB_TREE := $(BUILD)/deb/$(PKG)-$(VERSION)

# What goes into the source tarball: the Python package plus the files the
# packages install (snippet, docs, man page, licence, the daemon's launcher).
SOURCES := setup.py pyproject.toml MANIFEST.in README.md LICENSE condor_restd condor_config.d docs \
	packaging/libexec

# Package builds use the system's python3 and tools, not a virtualenv's or pyenv's.
BUILD_ENV := env -u VIRTUAL_ENV -u PYTHONPATH -u PYTHONHOME PATH=/usr/sbin:/usr/bin:/sbin:/bin

# On a host that is not RPM-based (Debian's rpm package: rpm-build is not an
# installed RPM there), rpmbuild needs three adjustments: skip the BuildRequires
# check (the rpm database is empty), run brp-compress with bash (it uses
# `read -d`, and Debian's /bin/sh is dash), and use EL's unversioned doc dirs.
ifeq ($(shell rpm -q --quiet rpm-build 2>/dev/null && echo rpm-host),)
RPMBUILD_FLAGS ?= --nodeps \
	--define '__brp_compress /bin/bash %{_rpmconfigdir}/brp-compress %{?_prefix}' \
	--define '_docdir_fmt %{NAME}'
endif

.PHONY: packages rpm deb tarball clean

packages: rpm deb

tarball:
	@test -n "$(VERSION)" || { echo "cannot read __version__ from condor_restd/__init__.py" >&2; exit 1; }
	@test -f $(SNIPPET) || { echo "$(SNIPPET) is missing: the packages install it" >&2; exit 1; }
	rm -rf $(BUILD)/src
	mkdir -p $(BUILD)/src/$(NAME)-$(VERSION) $(DIST)
	tar -cf - --exclude=__pycache__ --exclude='*.pyc' $(SOURCES) | tar -xf - -C $(BUILD)/src/$(NAME)-$(VERSION)
	tar -czf $(TARBALL) --owner=0 --group=0 --numeric-owner -C $(BUILD)/src $(NAME)-$(VERSION)

rpm: tarball
	rm -rf $(BUILD)/rpm
	mkdir -p $(BUILD)/rpm/SOURCES
	cp $(TARBALL) $(BUILD)/rpm/SOURCES/
	$(BUILD_ENV) rpmbuild -ba $(RPMBUILD_FLAGS) --define '_topdir $(CURDIR)/$(BUILD)/rpm' packaging/rpm/$(PKG).spec
	cp $(BUILD)/rpm/RPMS/*/$(PKG)-$(VERSION)-*.rpm $(BUILD)/rpm/SRPMS/$(PKG)-$(VERSION)-*.src.rpm $(DIST)/

# debhelper wants debian/ at the top of the source tree: assemble one under build/deb.
deb: tarball
	rm -rf $(BUILD)/deb
	mkdir -p $(BUILD)/deb
	tar -xzf $(TARBALL) -C $(BUILD)/deb
	mv $(BUILD)/deb/$(NAME)-$(VERSION) $(DEB_TREE)
	cp -R packaging/debian $(DEB_TREE)/debian
	cd $(DEB_TREE) && $(BUILD_ENV) dpkg-buildpackage -us -uc -b
	cp $(BUILD)/deb/$(PKG)_$(VERSION)-*.deb $(DIST)/

clean:
	rm -rf $(BUILD) $(DIST)
