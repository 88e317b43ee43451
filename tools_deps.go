//go:build tools

// Package deps pins the project's third-party dependencies before the code that uses them lands.
package deps

import (
	_ "github.com/alecthomas/kong"
	_ "github.com/cavaliergopher/cpio"
	_ "github.com/klauspost/compress/zstd"
	_ "github.com/pierrec/lz4/v4"
	_ "github.com/u-root/u-root/pkg/cpio"
	_ "github.com/ulikunitz/xz"
)
