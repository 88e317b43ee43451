// Command kabiguard-gate runs inside the initramfs (dracut module 90kabiguard) and stops the
// boot when a required module cannot load: it loads each module named in the list file,
// dependencies first as the image's modules.dep orders them, and on a refusal prints one
// console line with the kernel's own reason, then exits 1 so the dracut hook calls `die`.
//
// It is small and static (at most 2 MB): no modprobe needed; modules go to the kernel with
// finit_module(2), compressed ones decompressed by the kernel or, on older kernels, here.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const usage = `usage: kabiguard-gate [--list FILE] [--moddir DIR]
Loads every module named in FILE (default /etc/kabiguard/required), dependencies first as
DIR/modules.dep (default /lib/modules/$(uname -r)) orders them. Exit 0 when all load; else
one line with the module and the kernel's reason, and exit 1.
`

func main() {
	list, modDir := "/etc/kabiguard/required", ""
	args := os.Args[1:]
	for len(args) > 0 {
		switch {
		case args[0] == "--list" && len(args) > 1:
			list, args = args[1], args[2:]
		case args[0] == "--moddir" && len(args) > 1:
			modDir, args = args[1], args[2:]
		default:
			os.Stderr.WriteString(usage)
			os.Exit(2)
		}
	}
	os.Exit(run(list, modDir, os.Stdout))
}

func say(w io.Writer, s string) { io.WriteString(w, "kabiguard: "+s+"\n") }

func run(listPath, modDir string, out io.Writer) int {
	return runWith(listPath, modDir, out, nil)
}

// runWith is run with the step that gives one module file to the kernel replaced (tests);
// nil means the real one.
func runWith(listPath, modDir string, out io.Writer, insert func(name, path string) error) int {
	if modDir == "" {
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			say(out, "cannot tell the running kernel: "+err.Error())
			return 1
		}
		modDir = filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:]))
	}
	names, err := readList(listPath)
	if err != nil {
		say(out, err.Error())
		return 1
	}
	dep, err := readModulesDep(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		say(out, err.Error())
		return 1
	}
	l := &loader{dir: modDir, dep: dep, loaded: loadedModules(), insert: insert}
	if l.insert == nil {
		l.insert = l.insertFile
	}
	var ok []string
	for _, name := range names {
		if err := l.load(name); err != nil {
			say(out, "required module "+name+" cannot load: "+err.Error())
			return 1
		}
		ok = append(ok, name)
	}
	say(out, "required modules loaded: "+strings.Join(ok, " "))
	return 0
}

// readList reads module names, one per line, optionally followed by "early" as in
// required.d; '#' starts a comment. The list is what module-setup.sh wrote from required.d,
// which accepts only valid names: anything else here means a tampered or broken image, and a
// path-like name must never reach the file system (/sys/module/../../etc/passwd exists, so it
// would pass as built in).
func readList(path string) ([]string, error) {
	data, err := readRegular(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for i, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		where := path + ":" + strconv.Itoa(i+1) + ": "
		if !validName(f[0]) {
			return nil, errors.New(where + strconv.Quote(f[0]) + " is not a module name (letters, digits, '_' and '-'; '-' not first)")
		}
		for _, flag := range f[1:] { // a required.d line is a valid list line too
			if flag != "early" {
				return nil, errors.New(where + "unknown flag " + strconv.Quote(flag) + " after module " + f[0] + " (known: early)")
			}
		}
		names = append(names, normalize(f[0]))
	}
	return names, nil
}

// validName is the rule for a module name in required.d and in the image's list: kmod's
// module name characters, letters, digits, '_' and '-' (the kernel's build turns every other
// character of a file name into '_'), not starting with '-'. It is a copy of
// config.ValidModuleName, kept here so the gate stays small and free of the main program's
// packages; the dracut module's shell parser applies the same rule, and TestValidNameAgrees
// keeps the two Go copies equal.
func validName(s string) bool {
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

func normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// moduleName is kmod's name of a module file: a copy of kmod.ModuleName (the base name up to
// its first '.', '-' as '_'), as readModulesDep is a small copy of kmod.ParseDep. The gate
// goes into every initramfs: importing package kmod (which brings internal/rootfs and the
// compressors of internal/compression) grew this binary from 1,818,786 to 2,269,346 bytes
// (+25%, make build, Go 1.26), so it keeps these copies; TestModuleNameAgrees keeps the names
// equal. Unlike kmod.ParseDep, which refuses a malformed modules.dep, the gate skips a line
// without ':' as libkmod's own text lookup does: at boot, one bad line must not stop the rest.
func moduleName(p string) string {
	base := filepath.Base(p)
	if i := strings.IndexByte(base, '.'); i >= 0 {
		base = base[:i]
	}
	return normalize(base)
}

// depEntry is one modules.dep line: the module's path and its dependencies, deepest last.
type depEntry struct {
	path string
	deps []string
}

// maxDepLine bounds one modules.dep line: a real one is a few KB; a longer one is refused
// with its line number instead of holding the boot on an unbounded read.
const maxDepLine = 1 << 20

func readModulesDep(path string) (map[string]depEntry, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseModulesDep(f, path)
}

// parseModulesDep reads modules.dep lines "path: dep dep ..."; names of the file are in the
// errors. A line whose module name is not a valid one is skipped: depmod never writes it and
// no valid required name can match it.
func parseModulesDep(r io.Reader, path string) (map[string]depEntry, error) {
	out := map[string]depEntry{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxDepLine)
	n := 0
	for sc.Scan() {
		n++
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := moduleName(mod)
		if !validName(name) {
			continue
		}
		if _, dup := out[name]; !dup { // depmod lists the winning file first
			out[name] = depEntry{path: mod, deps: strings.Fields(rest)}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = errors.New("a line longer than " + strconv.Itoa(maxDepLine) + " bytes")
		}
		return nil, errors.New(path + ":" + strconv.Itoa(n+1) + ": " + err.Error())
	}
	return out, nil
}

// openRegular opens path for reading only when it is a regular file: a FIFO or a device put
// where a module or modules.dep should be must not block the boot forever (O_NONBLOCK makes
// the open of a FIFO return at once; the type check then refuses it).
func openRegular(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, errors.New(path + ": not a regular file")
	}
	return os.NewFile(uintptr(fd), path), nil
}

func readRegular(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// loadedModules is the set of modules already in the kernel (/proc/modules, and built-in ones
// via /sys/module without an initstate are not counted: only loadable modules matter here).
func loadedModules() map[string]bool {
	out := map[string]bool{}
	data, _ := os.ReadFile("/proc/modules")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out[f[0]] = true
		}
	}
	return out
}

type loader struct {
	dir    string
	dep    map[string]depEntry
	loaded map[string]bool
	insert func(name, path string) error // gives one module file to the kernel
	chain  []string                      // the modules being loaded, outermost first
}

// maxDepth bounds the dependency chain: real ones are a few modules deep; a hostile
// modules.dep must end in a line, not in a stack overflow.
const maxDepth = 1000

// chainError is a fault of modules.dep itself (a cycle, an absurd depth): it is reported as
// is, not wrapped once per level of the chain that found it.
type chainError struct{ msg string }

func (e *chainError) Error() string { return e.msg }

// load loads name after its dependencies (modules.dep lists them deepest last).
func (l *loader) load(name string) error {
	if !validName(name) {
		return errors.New(strconv.Quote(name) + " is not a module name")
	}
	if l.loaded[name] {
		return nil
	}
	for i, c := range l.chain {
		if c == name {
			cycle := append(append([]string{}, l.chain[i:]...), name)
			return &chainError{l.dir + "/modules.dep has a dependency cycle: " + strings.Join(cycle, " -> ")}
		}
	}
	if len(l.chain) >= maxDepth {
		return &chainError{l.dir + "/modules.dep: dependency chain of " + l.chain[0] + " deeper than " + strconv.Itoa(maxDepth) + " modules"}
	}
	e, ok := l.dep[name]
	if !ok {
		if builtin(name) {
			return nil
		}
		return errors.New("not in the initramfs (" + l.dir + "/modules.dep does not list it)")
	}
	l.chain = append(l.chain, name)
	defer func() { l.chain = l.chain[:len(l.chain)-1] }()
	for i := len(e.deps) - 1; i >= 0; i-- {
		d := moduleName(e.deps[i])
		if err := l.load(d); err != nil {
			var ce *chainError
			if errors.As(err, &ce) {
				return err
			}
			return errors.New("dependency " + d + ": " + err.Error())
		}
	}
	if err := l.insert(name, filepath.Join(l.dir, e.path)); err != nil {
		return err
	}
	l.loaded[name] = true
	return nil
}

// builtin reports whether the kernel has name built in (modules.builtin of the running kernel).
func builtin(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/module", name))
	return err == nil
}

// insert gives one module file to the kernel and, when it refuses, returns the kernel's
// reason from the log, e.g. "disagrees about version of symbol misc_register".
func (l *loader) insertFile(name, path string) error {
	// A raw descriptor: an *os.File would park a read in Go's poller until the kernel logs
	// something, and a successful load may log nothing.
	kmsg, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == nil {
		defer unix.Close(kmsg)
		unix.Seek(kmsg, 0, unix.SEEK_END) // only what this load logs
	} else {
		kmsg = -1
	}
	err = loadFile(path)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return nil
	}
	if reason := kernelReason(kmsg, name); reason != "" {
		return errors.New(reason)
	}
	return err
}

// moduleInitCompressedFile is finit_module's MODULE_INIT_COMPRESSED_FILE (Linux 6.4+ with
// CONFIG_MODULE_DECOMPRESS): the kernel decompresses the file itself.
const moduleInitCompressedFile = 4

// loadFile loads a .ko directly and a compressed module through the kernel's own
// decompressor (Linux 6.4+), or, on older kernels, through modprobe. The gate carries no
// decompressor of its own, which keeps it small.
func loadFile(path string) error {
	f, err := openRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if strings.HasSuffix(path, ".ko") {
		return finit(f, 0)
	}
	err = finit(f, moduleInitCompressedFile)
	if err == nil || !(errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
		return err
	}
	// An older kernel: let the image's modprobe (dracut always carries kmod) decompress it.
	name := moduleName(path)
	if out, err := exec.Command("modprobe", "--ignore-install", name).CombinedOutput(); err != nil {
		return errors.New("modprobe " + name + ": " + strings.TrimSpace(string(out)))
	}
	return nil
}

func finit(f *os.File, flags int) error {
	if err := unix.FinitModule(int(f.Fd()), "", flags); err != nil {
		return &os.SyscallError{Syscall: "finit_module", Err: err}
	}
	return nil
}

// kernelReason reads the kernel log records written since the load and returns the loader's
// message about name, without the "name: " prefix.
func kernelReason(kmsg int, name string) string {
	if kmsg < 0 {
		return ""
	}
	buf := make([]byte, 8192)
	var reasons []string
	// The loader logs before init_module returns; a few empty polls mean the log is drained.
	for idle := 0; idle < 5; {
		n, err := unix.Read(kmsg, buf)
		switch {
		case err == unix.EAGAIN:
			idle++
			time.Sleep(20 * time.Millisecond)
		case err == unix.EPIPE: // records were overwritten: carry on from the next one
		case err != nil || n <= 0:
			idle = 5
		default:
			if r := parseKmsg(buf[:n], name); r != "" {
				reasons = append(reasons, r)
			}
		}
	}
	return summarize(reasons)
}

// summarize keeps the loader's refusals: taint notices are dropped, and "Unknown symbol X
// (err -22)" when the log already said X's version disagrees.
func summarize(msgs []string) string {
	disagree := map[string]bool{}
	for _, m := range msgs {
		if sym, ok := strings.CutPrefix(m, "disagrees about version of symbol "); ok {
			disagree[sym] = true
		}
	}
	var out []string
	for _, m := range msgs {
		if strings.Contains(m, "taint") {
			continue
		}
		if rest, ok := strings.CutPrefix(m, "Unknown symbol "); ok {
			if sym, _, _ := strings.Cut(rest, " "); disagree[sym] {
				continue
			}
		}
		out = append(out, m)
	}
	return strings.Join(out, "; ")
}

// parseKmsg extracts the text of one /dev/kmsg record ("pri,seq,ts,flags;text") when it is
// about module name.
func parseKmsg(rec []byte, name string) string {
	_, text, ok := bytes.Cut(rec, []byte(";"))
	if !ok {
		return ""
	}
	line, _, _ := bytes.Cut(text, []byte("\n"))
	msg, ok := strings.CutPrefix(string(line), name+": ")
	if !ok {
		return ""
	}
	return msg
}
