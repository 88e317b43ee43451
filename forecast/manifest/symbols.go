package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/kabiguard/kabiguard/kabi"
	"github.com/kabiguard/kabiguard/kabi/module"
)

// A module's symbol lists are its bulk (hundreds of entries, a thousand manifests at a time):
// they are written as one string each, which JSON decoders read far faster than an object
// per symbol. Symbols reads like `modprobe --dump-modversions` ("0x1e1dfe5f\tmisc_register"
// lines); names are space-separated.

// Symbols is a symbol version table; null for a table the module does not have.
type Symbols []module.Symbol

// MarshalJSON writes "0xCRC\tNAME\n" lines.
func (s Symbols) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	var b strings.Builder
	for _, sym := range s {
		b.WriteString(kabi.FormatCRC(sym.CRC))
		b.WriteByte('\t')
		b.WriteString(sym.Name)
		b.WriteByte('\n')
	}
	return json.Marshal(b.String())
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Symbols) UnmarshalJSON(data []byte) error {
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	text, err := unquote(data)
	if err != nil {
		return err
	}
	out := make(Symbols, 0, strings.Count(text, "\n"))
	for line := range strings.Lines(text) {
		crc, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "\t")
		hex, isHex := strings.CutPrefix(crc, "0x")
		v, err := strconv.ParseUint(hex, 16, 32)
		if !ok || !isHex || err != nil || name == "" {
			return fmt.Errorf("symbol version %q: want 0xCRC<tab>NAME", line)
		}
		out = append(out, module.Symbol{Name: name, CRC: uint32(v)})
	}
	*s = out
	return nil
}

// Names is a list of symbol names, written space-separated.
type Names []string

// MarshalJSON writes the names separated by spaces.
func (n Names) MarshalJSON() ([]byte, error) { return json.Marshal(strings.Join(n, " ")) }

// UnmarshalJSON reads what MarshalJSON writes.
func (n *Names) UnmarshalJSON(data []byte) error {
	text, err := unquote(data)
	if err != nil {
		return err
	}
	*n = strings.Fields(text)
	return nil
}

// unquote reads a JSON string: symbol names need no escapes, so the common case is a slice
// (the decoder has validated the document already); anything else goes through encoding/json.
func unquote(data []byte) (string, error) {
	if len(data) >= 2 && data[0] == '"' && data[len(data)-1] == '"' && bytes.IndexByte(data, '\\') < 0 {
		return string(data[1 : len(data)-1]), nil
	}
	var text string
	err := json.Unmarshal(data, &text)
	return text, err
}
