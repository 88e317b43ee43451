// Package apthook reads what APT sends a DPkg::Pre-Install-Pkgs hook (apt.conf(5)): with
// protocol version 2 or 3, a VERSION line, APT's configuration space (%-encoded key=value
// lines up to a blank line), then one line per package action: name, old version (and, in
// version 3, its architecture and multi-arch type), the direction of the change, the new
// version (likewise), and the action: the .deb file being unpacked, **CONFIGURE** or
// **REMOVE**. Version 1 (the default when a hook asks for nothing) sends only the .deb file
// names, which is not enough to see removals: kabiguard's snippet asks for version 3.
//
// A hook that exits non-zero makes APT abort before dpkg runs, so the parser is strict: a
// line it cannot read is an error naming the line, and the caller refuses rather than guess.
package apthook
