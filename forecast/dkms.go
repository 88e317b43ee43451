package forecast

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strings"

	"github.com/kabiguard/kabiguard/internal/rootfs"
	"github.com/kabiguard/kabiguard/kmod"
)

// DKMS builds its registered modules for a kernel when the kernel is installed with its headers
// (its kernel postinst hook runs `dkms autoinstall`). A transaction that brings a kernel and its
// headers therefore brings the builds of those modules too, which the package itself does not
// hold: the APT gate must not refuse that kernel for them. The install-time gate stays the
// check that the build really happened.

// DKMSBuilds lists the kernel modules DKMS would build automatically under root, by module
// name, each with its DKMS "name/version": every registered module (var/lib/dkms/NAME/VERSION/
// source/dkms.conf) with AUTOINSTALL="yes", by its BUILT_MODULE_NAME entries.
func DKMSBuilds(root string) map[string]string {
	out := map[string]string{}
	r, err := rootfs.At(root)
	if err != nil {
		return out
	}
	base := filepath.Join(root, "var", "lib", "dkms")
	names, _ := r.ReadDir(base)
	for _, n := range names {
		versions, _ := r.ReadDir(filepath.Join(base, n.Name()))
		for _, v := range versions {
			data, err := r.ReadFile(filepath.Join(base, n.Name(), v.Name(), "source", "dkms.conf"))
			if err != nil {
				continue
			}
			for _, m := range autoBuilt(data) {
				out[kmod.Normalize(m)] = n.Name() + "/" + v.Name()
			}
		}
	}
	return out
}

// autoBuilt reads the module names a dkms.conf builds, if it builds them automatically. It
// reads the simple assignments DKMS's own files use ($PACKAGE_NAME expanded), not shell.
func autoBuilt(conf []byte) []string {
	vars := map[string]string{}
	var built []string
	sc := bufio.NewScanner(bytes.NewReader(conf))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.ContainsAny(k, " \t$") {
			continue
		}
		v = strings.Trim(strings.TrimSpace(v), `"'`)
		for name, val := range vars {
			v = strings.ReplaceAll(strings.ReplaceAll(v, "${"+name+"}", val), "$"+name, val)
		}
		if strings.HasPrefix(k, "BUILT_MODULE_NAME[") {
			built = append(built, v)
			continue
		}
		vars[k] = v
	}
	if !strings.EqualFold(vars["AUTOINSTALL"], "yes") {
		return nil
	}
	if len(built) == 0 && vars["PACKAGE_NAME"] != "" {
		built = []string{vars["PACKAGE_NAME"]} // DKMS's default
	}
	return built
}
