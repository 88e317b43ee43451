# kabiguard — see README.md. Every target runs from a fresh clone on Debian 12 as root.
GO        ?= go
PREFIX    ?= /usr
DESTDIR   ?=
BIN       := bin
BINARIES  := kabiguard weak-modules kabiguard-gate
GOFLAGS_STATIC := -trimpath -ldflags='-s -w -X main.version=$(shell git describe --always --dirty 2>/dev/null || echo dev)'
# Fuzz targets run for a bounded time in `make test`: "package:Target".
FUZZ      := ./kabi/module:FuzzParse ./kabi/exports:FuzzDecode ./kabi/symvers:FuzzParse ./internal/compression:FuzzDecode ./internal/compression:FuzzXZ ./initramfs:FuzzRead ./cmd/kabiguard-gate:FuzzModulesDep ./forecast/pkgfile:FuzzWalk ./kmod:FuzzParseDep
FUZZTIME  ?= 15s

.PHONY: all build man deb rpm demo test short unit fuzz bench vet clean

all: build

build:
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do CGO_ENABLED=0 $(GO) build $(GOFLAGS_STATIC) -o $(BIN)/$$b ./cmd/$$b || exit 1; done

# Manual pages: the commands' from their own grammar (--man), the file formats' from the shipped
# kabiguard.conf and man/*.txt (scripts/genman). Each is written whole or not at all.
man: build
	@mkdir -p $(BIN)/man
	@set -e; page() { out=$(BIN)/man/$$1; shift; "$$@" >$$out.tmp; mv $$out.tmp $$out; }; \
	page kabiguard.8 $(BIN)/kabiguard --man; \
	page weak-modules.8 $(BIN)/weak-modules --man; \
	page kabiguard.conf.5 $(GO) run ./scripts/genman conf etc/kabiguard.conf; \
	page kabiguard-required.5 $(GO) run ./scripts/genman text kabiguard-required 5 man/kabiguard-required.5.txt; \
	page kabiguard-gate.8 $(GO) run ./scripts/genman text kabiguard-gate 8 man/kabiguard-gate.8.txt

# A Debian package of what 'make install' places (scripts/make-deb.sh); prints its path.
deb: build
	@sh scripts/make-deb.sh $(abspath $(BIN)) $(GO)

# An RPM for RHEL of what 'make install' places, less Debian's parts, with kmod's weak-modules
# diverted (packaging/rpm/kabiguard.spec says why; scripts/make-rpm.sh); prints its path.
rpm: build
	@sh scripts/make-rpm.sh $(abspath $(BIN)) $(GO)

# The main job on the embedded sample (testdata/sample): offline, a few seconds.
demo: build
	@CGO_ENABLED=0 $(GO) build -o $(BIN)/demo-initrd ./scripts/demo-initrd
	@sh scripts/demo.sh $(BIN)

# Everything: unit tests, real-kernel tests (they download Debian kernels into
# $${KABIGUARD_TEST_CACHE:-/var/cache/kabiguard-test} on first use; needs root and the archive),
# and bounded fuzzing.
test: vet unit fuzz

vet:
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  [ -z "$$unformatted" ] || { echo "gofmt would change: $$unformatted (run gofmt -w)" >&2; exit 1; }
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'" >&2; exit 1; }

unit:
	$(GO) test -count=1 -timeout 40m ./...

# The fast tier: every test that needs neither root nor a download, in under a minute, as a
# normal user (internal/testkit's Slow and NeedsRoot decide what it skips).
short:
	$(GO) test -short -count=1 ./...

fuzz:
	@FUZZ='$(FUZZ)' FUZZTIME='$(FUZZTIME)' GO='$(GO)' sh scripts/fuzz.sh

bench: build
	@sh scripts/bench.sh

clean:
	rm -rf $(BIN)

# ---------------------------------------------------------------------------------------------
# install / uninstall. PREFIX (default /usr) and DESTDIR as usual; SYSCONFDIR (default /etc)
# holds the configuration and the Debian kernel hooks, whose directories are fixed.
#   $(SBINDIR)                         kabiguard, weak-modules (RHEL's path with PREFIX=/usr),
#                                      kabiguard-gate (the dracut module copies it into images)
#   $(PREFIX)/lib/kernel/install.d     45-kabiguard.install, 86-kabiguard-gate.install
#   $(SYSCONFDIR)/kernel/postinst.d    dkms-kabiguard, zx-kabiguard-initrd (Debian hooks)
#   $(SYSCONFDIR)/kernel/postrm.d      dkms-kabiguard
#   $(PREFIX)/lib/depmod.d             kabiguard.conf (search ... weak-updates)
#   $(PREFIX)/lib/dracut/...           modules.d/90kabiguard/*, dracut.conf.d/90-kabiguard.conf
#   $(PREFIX)/share/initramfs-tools/   hooks/kabiguard, scripts/init-premount/kabiguard (Debian's
#                                      default generator: early modules and the boot gate),
#                                      with the required.d parser in $(KG_DATADIR)/required.sh
#   $(SYSCONFDIR)/kabiguard/           kabiguard.conf (all defaults commented; an existing one is
#                                      never overwritten), required.d/ (empty)
#   $(PREFIX)/share/{bash-completion,fish,zsh}/...  completion for both commands (completion/)
#   $(SYSCONFDIR)/apt/apt.conf.d/60kabiguard  the APT gate (kabiguard apt-hook before dpkg)
#   $(PREFIX)/lib/systemd/system       kabiguard-metrics.{service,timer} (Prometheus textfile
#                                      metrics; not enabled)
#   $(DNF_PLUGINDIR)/kabiguard.py      the dnf 4 gate (when dnf 4 is installed; DNF_PLUGINDIR= skips
#   $(SYSCONFDIR)/dnf/plugins/kabiguard.conf  it) and its settings (an existing file is kept)
#   $(RPM_FILEATTRSDIR)/kabiguard.attr  rpmbuild's kmod Requires generator (kabiguard requires)
#   $(MANDIR)/man5, man8               kabiguard(8), weak-modules(8), kabiguard-gate(8),
#                                      kabiguard.conf(5), kabiguard-required(5) (make man)
#   $(PREFIX)/share/kabiguard/         the pristine kabiguard.conf and the manifest of every
#                                      path install created, which uninstall reads: it removes
#                                      exactly those files, kabiguard.conf only when it still
#                                      equals the pristine copy, directories only when empty.
# The hooks find the binary at its installed path (their KABIGUARD default is filled in).
SYSCONFDIR ?= /etc
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
RPM_FILEATTRSDIR ?= $(PREFIX)/lib/rpm/fileattrs
KG_DATADIR  = $(PREFIX)/share/kabiguard
KG_MANIFEST = $(KG_DATADIR)/installed-files
KG_DRACUT   = $(wildcard dracut/90kabiguard/*)
KG_DRACONF  = $(wildcard dracut/dracut.conf.d/90-kabiguard.conf)
KG_ITOOLS   = initramfs-tools/hooks/kabiguard initramfs-tools/scripts/init-premount/kabiguard
# dnf 4's plugin directory, from the Python dnf runs on (platform-python on RHEL 8).
DNF_PLUGINDIR ?= $(shell for py in /usr/libexec/platform-python /usr/bin/python3; do \
	$$py -c 'import dnf.const; print(dnf.const.PLUGINPATH)' 2>/dev/null && break; done)

.PHONY: install uninstall

install: build man
	@set -e; D='$(DESTDIR)'; M='$(DESTDIR)$(KG_MANIFEST)'; new=$$(mktemp); \
	trap 'rm -f "$$new"' EXIT; \
	mkd() { if [ ! -d "$$D$$1" ]; then mkdir -p "$$D$$1"; echo "dir $$1" >>"$$new"; fi; }; \
	put() { mkdir -p "$$D$${3%/*}"; install -m "$$1" "$$2" "$$D$$3"; echo "file $$3" >>"$$new"; echo "  $$3"; }; \
	hook() { mkdir -p "$$D$${2%/*}"; \
	  sed 's#^: "$${KABIGUARD:=kabiguard}"$$#: "$${KABIGUARD:=$(SBINDIR)/kabiguard}"#' "$$1" >"$$D$$2.tmp"; \
	  grep -q '^: "$${KABIGUARD:=$(SBINDIR)/kabiguard}"$$' "$$D$$2.tmp" || { echo "$$1: no KABIGUARD default to fill in" >&2; exit 1; }; \
	  chmod 755 "$$D$$2.tmp"; mv "$$D$$2.tmp" "$$D$$2"; echo "file $$2" >>"$$new"; echo "  $$2"; }; \
	mkd $(KG_DATADIR); \
	for b in $(BINARIES); do put 755 $(BIN)/$$b $(SBINDIR)/$$b; done; \
	for f in install.d/*.install; do hook $$f $(PREFIX)/lib/kernel/$$f; done; \
	for f in kernel/postinst.d/* kernel/postrm.d/*; do hook $$f $(SYSCONFDIR)/$$f; done; \
	put 644 depmod.d/kabiguard.conf $(PREFIX)/lib/depmod.d/kabiguard.conf; \
	for p in $(BIN)/man/*.[58]; do put 644 $$p $(MANDIR)/man$${p##*.}/$${p##*/}; done; \
	comp() { mkdir -p "$$D$${2%/*}"; sed 's#@SBINDIR@#$(SBINDIR)#g' "$$1" >"$$D$$2"; chmod 644 "$$D$$2"; echo "file $$2" >>"$$new"; echo "  $$2"; }; \
	for c in kabiguard weak-modules; do comp completion/kabiguard.bash $(PREFIX)/share/bash-completion/completions/$$c; \
	  comp completion/kabiguard.fish $(PREFIX)/share/fish/vendor_completions.d/$$c.fish; done; \
	comp completion/_kabiguard.zsh $(PREFIX)/share/zsh/vendor-completions/_kabiguard; \
	comp apt/60kabiguard $(SYSCONFDIR)/apt/apt.conf.d/60kabiguard; \
	for u in systemd/kabiguard-metrics.service systemd/kabiguard-metrics.timer; do comp $$u $(PREFIX)/lib/systemd/system/$${u##*/}; done; \
	if [ -n "$(DNF_PLUGINDIR)" ]; then put 644 dnf/kabiguard.py $(DNF_PLUGINDIR)/kabiguard.py; pc=$(SYSCONFDIR)/dnf/plugins/kabiguard.conf; \
	  if [ ! -e "$$D$$pc" ]; then mkdir -p "$$D$${pc%/*}"; sed 's#^kabiguard = /usr/sbin/kabiguard$$#kabiguard = $(SBINDIR)/kabiguard#' dnf/kabiguard.conf >"$$D$$pc"; \
	    chmod 644 "$$D$$pc"; echo "file $$pc" >>"$$new"; echo "  $$pc"; \
	  else echo "  $$pc: exists, kept"; if [ -f "$$M" ] && grep -qx "file $$pc" "$$M"; then echo "file $$pc" >>"$$new"; fi; fi; fi; \
	comp rpm/kabiguard.attr $(RPM_FILEATTRSDIR)/kabiguard.attr; \
	if [ -n "$(KG_DRACUT)" ]; then mkd $(PREFIX)/lib/dracut/modules.d/90kabiguard; fi; \
	for f in $(KG_DRACUT); do m=644; [ -x $$f ] && m=755; put $$m $$f $(PREFIX)/lib/dracut/modules.d/90kabiguard/$${f##*/}; done; \
	for f in $(KG_DRACONF); do put 644 $$f $(PREFIX)/lib/dracut/dracut.conf.d/$${f##*/}; done; \
	for f in $(KG_ITOOLS); do put 755 $$f $(PREFIX)/share/$$f; done; \
	put 644 dracut/90kabiguard/kabiguard-required.sh $(KG_DATADIR)/required.sh; \
	conf=$(SYSCONFDIR)/kabiguard/kabiguard.conf; mkd $(SYSCONFDIR)/kabiguard; mkd $(SYSCONFDIR)/kabiguard/required.d; \
	if [ ! -e "$$D$$conf" ]; then install -m 644 etc/kabiguard.conf "$$D$$conf"; echo "conf $$conf" >>"$$new"; echo "  $$conf"; \
	elif [ -f "$$M" ] && grep -qx "conf $$conf" "$$M"; then \
	  if cmp -s "$$D$$conf" "$$D$(KG_DATADIR)/kabiguard.conf"; then install -m 644 etc/kabiguard.conf "$$D$$conf"; echo "  $$conf"; \
	  else echo "  $$conf: modified, kept (the new default is $(KG_DATADIR)/kabiguard.conf)"; fi; \
	  echo "conf $$conf" >>"$$new"; \
	else echo "  $$conf: exists, kept (the default is $(KG_DATADIR)/kabiguard.conf)"; fi; \
	put 644 etc/kabiguard.conf $(KG_DATADIR)/kabiguard.conf; \
	if [ -f "$$M" ]; then grep '^dir ' "$$M" | while read -r k p; do grep -qx "dir $$p" "$$new" || echo "dir $$p" >>"$$new"; done; fi; \
	echo "file $(KG_MANIFEST)" >>"$$new"; install -m 644 "$$new" "$$M"; \
	echo "installed; 'make uninstall' removes what $(KG_MANIFEST) lists"

uninstall:
	@set -e; D='$(DESTDIR)'; M='$(DESTDIR)$(KG_MANIFEST)'; \
	[ -f "$$M" ] || { echo "$$M not found: nothing to uninstall (make install writes it)" >&2; exit 1; }; \
	list=$$(mktemp); trap 'rm -f "$$list"' EXIT; cp "$$M" "$$list"; M=$$list; \
	grep '^conf ' "$$M" | while read -r k p; do \
	  if cmp -s "$$D$$p" "$$D$(KG_DATADIR)/kabiguard.conf"; then rm -f "$$D$$p"; echo "  removed $$p"; \
	  elif [ -e "$$D$$p" ]; then echo "  kept $$p: modified by the admin"; fi; done; \
	grep '^file ' "$$M" | while read -r k p; do rm -f "$$D$$p"; echo "  removed $$p"; done; \
	grep '^dir ' "$$M" | sort -r | while read -r k p; do rmdir "$$D$$p" 2>/dev/null || true; done; \
	n=$$(find "$$D/lib/modules/" -mindepth 2 -path '*/weak-updates/*' -type l 2>/dev/null | wc -l); \
	if [ "$$n" -gt 0 ]; then \
	  echo "note: $$n weak-updates link(s) under $$D/lib/modules stay: kernels may boot with those modules, but"; \
	  echo "      nothing keeps them right any more. To drop them: rm the links under /lib/modules/*/weak-updates,"; \
	  echo "      then 'depmod -a RELEASE' and rebuild the initramfs of each kernel that had them."; \
	fi
