package compression

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// The pure-Go LZMA decoder (ulikunitz/xz) runs at about a quarter of liblzma's speed: on the
// real linux-image-6.1.0-56 .deb a forecast spent 90% of its time there (6.3 s against 2.6 s
// for dpkg-deb -x). No faster pure-Go decoder exists, so for the large streams (a kernel
// package's data.tar.xz, a vmlinuz payload) the xz(1) every Debian and RHEL system has
// (xz-utils is Priority: required; xz is in RHEL's @core) decodes them when present, through a
// pipe: no path is handed to it. Callers fall back to the Go readers without it.

// XZCommand is the xz binary to decode with, "" when there is none (a variable for tests).
var XZCommand = func() string {
	p, err := exec.LookPath("xz")
	if err != nil {
		return ""
	}
	return p
}

// NewXZCommandReader decodes r with xz(1) on every core; singleStream stops after the first
// stream and ignores what follows (a kernel payload ends with its size). The read that meets
// the end of the output returns xz's failure, if any; Close stops xz if the reader stopped
// early, which is no error.
func NewXZCommandReader(bin string, r io.Reader, singleStream bool) (io.ReadCloser, error) {
	args := []string{"--decompress", "--stdout", "--threads=0", "--quiet"}
	if singleStream {
		args = append(args, "--single-stream")
	}
	cmd := exec.Command(bin, args...)
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

type xzProcess struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *bytes.Buffer
	once   sync.Once
	err    error
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
			msg, _, _ := strings.Cut(strings.TrimSpace(p.stderr.String()), "\n")
			if msg == "" {
				msg = err.Error()
			}
			p.err = fmt.Errorf("xz: %s", msg)
		}
	})
	return p.err
}
