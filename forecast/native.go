package forecast

import "github.com/kabiguard/kabiguard/forecast/pkgfile"

// packageNative is every module the package ships for k, by name: its in-tree modules (as
// PACKAGE:PATH) and those outside kernel/. Made once per kernel and shared, read only, by
// every host a package is judged for (forecast --manifest judges a thousand).
func (k *Kernel) packageNative(pkg *pkgfile.Package) map[string]string {
	k.nativeOnce.Do(func() {
		k.native = make(map[string]string, len(k.InTree)+len(k.External))
		for n, p := range k.InTree {
			from := pkg
			if f := k.inTreeFrom[n]; f != nil {
				from = f
			}
			k.native[n] = from.Path + ":" + p
		}
		for _, m := range k.External {
			k.native[m.Name] = m.Path
		}
	})
	return k.native
}
