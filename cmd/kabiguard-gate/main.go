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
	l := &loader{dir: modDir, dep: dep, loaded: loadedModules()}
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

// readList reads module names, one per line; '#' starts a comment.
func readList(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		line, _, _ = strings.Cut(line, "#")
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, normalize(f[0]))
		}
	}
	return names, nil
}

func normalize(name string) string { return strings.ReplaceAll(name, "-", "_") }

// moduleName is kmod's name of a module file.
func moduleName(p string) string {
	base := filepath.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return normalize(base)
}

// depEntry is one modules.dep line: the module's path and its dependencies, deepest last.
type depEntry struct {
	path string
	deps []string
}

func readModulesDep(path string) (map[string]depEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]depEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		name := moduleName(mod)
		if _, dup := out[name]; !dup { // depmod lists the winning file first
			out[name] = depEntry{path: mod, deps: strings.Fields(rest)}
		}
	}
	return out, sc.Err()
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
}

// load loads name after its dependencies (modules.dep lists them deepest last).
func (l *loader) load(name string) error {
	if l.loaded[name] {
		return nil
	}
	e, ok := l.dep[name]
	if !ok {
		if builtin(name) {
			return nil
		}
		return errors.New("not in the initramfs (" + l.dir + "/modules.dep does not list it)")
	}
	for i := len(e.deps) - 1; i >= 0; i-- {
		d := moduleName(e.deps[i])
		if err := l.load(d); err != nil {
			return errors.New("dependency " + d + ": " + err.Error())
		}
	}
	return l.insert(name, filepath.Join(l.dir, e.path))
}

// builtin reports whether the kernel has name built in (modules.builtin of the running kernel).
func builtin(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/module", name))
	return err == nil
}

// insert gives one module file to the kernel and, when it refuses, returns the kernel's
// reason from the log, e.g. "disagrees about version of symbol misc_register".
func (l *loader) insert(name, path string) error {
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
		l.loaded[name] = true
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
	f, err := os.Open(path)
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
