package exports

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// A 6.1 vmlinuz's payload is xz with the x86 BCJ filter, about 8 MiB decoding to 40: the
// pure-Go LZMA2 decoder needs 1.5 s of a core for it, liblzma a fraction. xz(1), present on
// every Debian and RHEL system (xz-utils is Priority: required), decodes it when found, with
// --single-stream because the kernel's payload ends with its size after the stream; decodeXZ
// (Go) does otherwise and is what tests compare xz(1) with. The bytes go through a pipe.

// xzCommand is the xz binary used, "" for none (a variable for tests).
var xzCommand = func() string {
	p, err := exec.LookPath("xz")
	if err != nil {
		return ""
	}
	return p
}

// decodeXZWith decodes the first xz stream of data with the xz binary, at most limit bytes.
func decodeXZWith(bin string, data []byte, limit int) ([]byte, error) {
	cmd := exec.Command(bin, "--decompress", "--stdout", "--single-stream", "--quiet")
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	plain, rerr := io.ReadAll(io.LimitReader(out, int64(limit)+1))
	out.Close()
	werr := cmd.Wait()
	switch {
	case len(plain) > limit:
		return nil, fmt.Errorf("%w: decodes to more than the %d bytes expected", errXZ, limit)
	case rerr != nil:
		return nil, rerr
	case werr != nil:
		msg, _, _ := strings.Cut(strings.TrimSpace(stderr.String()), "\n")
		return nil, fmt.Errorf("%w: xz: %s (%v)", errXZ, msg, werr)
	}
	return plain, nil
}
