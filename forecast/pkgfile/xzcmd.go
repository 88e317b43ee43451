package pkgfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// Decoding a kernel package's data.tar.xz is nearly all of a forecast's time, and the pure-Go
// LZMA decoder (ulikunitz/xz, also behind internal/compression's block-parallel reader) runs at
// about a quarter of liblzma's speed: measured on the real linux-image-6.1.0-56 .deb on an idle
// 2-core machine, a forecast took 6.3 s against 2.6 s for dpkg-deb -x, 90% of it in LZMA. No
// faster pure-Go decoder exists, so the xz(1) every Debian and RHEL system has (xz-utils is
// Priority: required; xz is in RHEL's @core) decodes it when present, on every core; without it
// the pure-Go readers do. The data goes to xz through a pipe from the file already opened:
// no path is handed to it.

// xzCommand is the xz binary used, "" for none (a variable for tests).
var xzCommand = func() string {
	p, err := exec.LookPath("xz")
	if err != nil {
		return ""
	}
	return p
}

// xzProcess decodes r with xz(1). Close waits for it; an xz failure (corrupt data) is the error
// of the read that meets the end of its output, or of Close.
type xzProcess struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *bytes.Buffer
	once   sync.Once
	err    error
}

func startXZ(bin string, r io.Reader) (*xzProcess, error) {
	cmd := exec.Command(bin, "--decompress", "--stdout", "--threads=0", "--quiet")
	cmd.Stdin = r
	p := &xzProcess{cmd: cmd, stderr: new(bytes.Buffer)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.out = out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *xzProcess) Read(b []byte) (int, error) {
	n, err := p.out.Read(b)
	if err == io.EOF {
		if werr := p.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// Close stops xz if the reader stopped early (a walk that found what it wanted), and reports
// whether xz failed otherwise.
func (p *xzProcess) Close() error {
	p.out.Close() // xz then ends on a broken pipe, which is no error of the data
	err := p.wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) && !exit.Exited() {
		return nil // killed by SIGPIPE: the reader had what it needed
	}
	return err
}

func (p *xzProcess) wait() error {
	p.once.Do(func() {
		if err := p.cmd.Wait(); err != nil {
			p.err = fmt.Errorf("%w: xz: %s", ErrFormat, strings.TrimSpace(firstLine(p.stderr.String(), err.Error())))
		}
	})
	return p.err
}

func firstLine(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	line, _, _ := strings.Cut(s, "\n")
	return line
}
