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
// per symbol, and with spaces only, which need no escape: Symbols as "CRC NAME" pairs
// ("0x1e1dfe5f misc_register 0x6a45ac49 misc_deregister"), Names separated by spaces.

// Symbols is a symbol version table; null for a table the module does not have.
type Symbols []module.Symbol

// MarshalJSON writes "0xCRC NAME" pairs separated by spaces.
func (s Symbols) MarshalJSON() ([]byte, error) {
	if s == nil {
		return []byte("null"), nil
	}
	var b strings.Builder
	for i, sym := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kabi.FormatCRC(sym.CRC))
		b.WriteByte(' ')
		b.WriteString(sym.Name)
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
	f := strings.Fields(text)
	if len(f)%2 != 0 {
		return fmt.Errorf("symbol versions: want 0xCRC NAME pairs, %q is alone", f[len(f)-1])
	}
	out := make(Symbols, len(f)/2)
	for i := range out {
		crc, name := f[2*i], f[2*i+1]
		hex, isHex := strings.CutPrefix(crc, "0x")
		v, err := strconv.ParseUint(hex, 16, 32)
		if !isHex || err != nil {
			return fmt.Errorf("symbol version %q %q: want 0xCRC NAME", crc, name)
		}
		out[i] = module.Symbol{Name: name, CRC: uint32(v)}
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
