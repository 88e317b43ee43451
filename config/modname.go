package config

import (
	"fmt"
	"strconv"
)

// ValidModuleName is the rule for a module name in required.d: kmod's module name characters,
// letters, digits, '_' and '-' (the kernel's build turns every other character of a module's
// file name into '_'), not starting with '-'. A name that breaks it is a typo or an attack (a
// path, a shell pattern, an option) and is refused with its file and line. Two more readers
// of required.d apply the same rule and must stay equal to this one: the dracut module's
// shell parser (dracut/90kabiguard/module-setup.sh, kabiguard_required;
// TestRequiredParsersAgree in cmd/kabiguard) and kabiguard-gate's own copy (validName;
// TestValidNameAgrees).
func ValidModuleName(s string) bool {
	if s == "" || s[0] == '-' { // never taken for an option by instmods, modprobe or dracut-install
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// checkRequiredLine checks one required.d line (comment and surrounding space removed):
// ASCII only, so that splitting on Unicode spaces (strings.Fields) and the shell's IFS
// cannot split it differently, then a valid module name.
func checkRequiredLine(text string, fields []string) error {
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 {
			return fmt.Errorf("non-ASCII byte in %s", strconv.Quote(text))
		}
	}
	if !ValidModuleName(fields[0]) {
		return fmt.Errorf("%s is not a module name (letters, digits, '_' and '-'; '-' not first)", strconv.Quote(fields[0]))
	}
	return nil
}
